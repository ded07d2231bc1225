"""Job functions for the scheduler tests (importable by queue actor processes)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path


def now() -> float:
    """When the job ran."""
    return time.time()


def mark(marker_dir: str, label: str = "") -> str:
    """Leave one file per run, so a test can count runs (duplicates included)."""
    Path(marker_dir).mkdir(parents=True, exist_ok=True)
    name = f"{label}-{time.time():.3f}-{uuid.uuid4().hex[:6]}"
    (Path(marker_dir) / name).touch()
    return name


def concat(*parts: str) -> str:
    return "".join(parts)


def fail(message: str) -> None:
    raise RuntimeError(message)
