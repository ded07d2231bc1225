"""The job functions the snippets of README.md and docs/ call without defining them
(tests/test_doc_snippets.py); importable, so workers find them by reference."""

from __future__ import annotations

import trio

import actorq

__all__ = [
    "add", "backup", "build_report", "extract", "merge", "ping", "publish", "remind",
    "remind_all", "resize", "send_digest", "send_mail", "send_reminder", "tick",
]  # fmt: skip


def add(a: int, b: int) -> int:
    return a + b


def send_mail(to: str, subject: str = "") -> str:
    return f"sent to {to}"


def resize(path: str) -> str:
    return path


def send_reminder(user_id: int) -> int:
    return user_id


def build_report() -> str:
    return "report"


def remind(user_id: int) -> int:
    return user_id


def remind_all() -> None:
    return None


def send_digest(day: str) -> str:
    return day


def backup(db: str) -> str:
    return db


def ping() -> str:
    return "pong"


def extract(source: str) -> str:
    return source


def merge() -> str:
    return "merged"


def publish() -> str:
    return "published"


async def tick(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """A task child that is ready at once and runs until stopped."""
    task_status.started()
    await trio.sleep_forever()


class Echo(actorq.Actor):
    """An actor the snippets' ``ref`` points at."""
