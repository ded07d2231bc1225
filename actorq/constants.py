"""Names of every stream, subject, bucket and default, in one place."""

from __future__ import annotations

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_QUEUE",
    "DEFAULT_URL",
    "ENV_CHILD",
    "ENV_CREDENTIALS_FILE",
    "ENV_DATA_DIR",
    "ENV_FAULTS",
    "ENV_NAMESPACE",
    "ENV_NATS_SERVER",
    "ENV_NATS_URL",
    "LEGACY_RESULTS_DURABLE",
    "RESULTS_DURABLE",
    "SCHEDULER_DURABLE",
    "WRONG_LAST_SEQUENCE",
]

#: Where clients and actors connect when told nothing else.
DEFAULT_URL = "nats://127.0.0.1:4222"

#: Environment variable with the NATS URL(s), comma-separated: read by every entry
#: point (the sync helper, the CLI, ``actorq up``'s ``[nats] url``).
ENV_NATS_URL = "ACTORQ_NATS_URL"

#: Environment variable with the namespace, read by the same entry points.
ENV_NAMESPACE = "ACTORQ_NAMESPACE"

#: Prefix of every stream, subject and bucket; several apps can share one NATS.
DEFAULT_NAMESPACE = "actorq"

#: Queue used when a job names none.
DEFAULT_QUEUE = "default"

#: Environment variable that points at a specific ``nats-server`` executable.
ENV_NATS_SERVER = "ACTORQ_NATS_SERVER"

#: Durable consumer of the outcomes stream (the result actors share it); it acks each
#: message on its own (explicit), so a batch that failed is never covered by a later ack.
RESULTS_DURABLE = "result-actor"

#: Its predecessor, which acked "all up to" (lost results, issue 12); retired on start.
LEGACY_RESULTS_DURABLE = "results"

#: Durable consumer of fired schedule timers (the leading scheduler reads it).
SCHEDULER_DURABLE = "scheduler"

#: JetStream's error code for a failed ``Nats-Expected-Last-(Subject-)Sequence`` check.
WRONG_LAST_SEQUENCE = 10071

#: Environment variable naming a local runtime's credentials file (URL, user,
#: password, signing key), for clients on the same machine.
ENV_CREDENTIALS_FILE = "ACTORQ_CREDENTIALS_FILE"

#: Environment variable with the embedded server's data dir (also ``[nats] data_dir``).
ENV_DATA_DIR = "ACTORQ_NATS_DATA_DIR"

#: Environment variable arming fault points in tests (see actorq.process.faults).
ENV_FAULTS = "ACTORQ_FAULTS"

#: Environment variable set for the children of ``actorq up`` (see actorq.runtime.child).
ENV_CHILD = "ACTORQ_UP_CHILD"
