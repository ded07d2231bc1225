"""Names of every stream, subject, bucket and default, in one place."""

from __future__ import annotations

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_QUEUE",
    "ENV_NATS_SERVER",
]

#: Prefix of every stream, subject and bucket; several apps can share one NATS.
DEFAULT_NAMESPACE = "actorq"

#: Queue used when a job names none.
DEFAULT_QUEUE = "default"

#: Environment variable that points at a specific ``nats-server`` executable.
ENV_NATS_SERVER = "ACTORQ_NATS_SERVER"
