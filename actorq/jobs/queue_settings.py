"""What a queue actor process needs to run, passed to it as JSON (``actorq up`` builds
it from the config file; tests and embedders build it by hand)."""

from __future__ import annotations

import msgspec

from actorq.constants import DEFAULT_NAMESPACE, DEFAULT_URL
from actorq.jobs.streams import DEFAULT_ACK_WAIT, DEFAULT_MAX_BYTES
from actorq.nats.options import ConnectOptions

__all__ = ["QueueActorSettings"]


class QueueActorSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything a queue actor process needs, passed to it as JSON."""

    queue: str
    url: list[str] = msgspec.field(default_factory=lambda: [DEFAULT_URL])
    namespace: str = DEFAULT_NAMESPACE
    concurrency: int = 10
    ack_wait: float = DEFAULT_ACK_WAIT
    #: Report a ``running`` status when a job starts (one extra message per job).
    track_started: bool = True
    #: Exit gracefully (to be restarted fresh) after this many jobs.
    recycle_after_jobs: int | None = None
    #: Exit gracefully when the process's RSS passes this many MB.
    recycle_above_rss_mb: float | None = None
    #: How to connect (auth, TLS); ``actorq up`` fills its secrets in from the
    #: environment, never from the command line.
    connect: ConnectOptions = ConnectOptions()
    #: Hex-encoded HMAC key; envelopes without a valid signature are dead-lettered
    #: (``bad_signature``) and never run.
    signing_key_hex: str | None = None
    #: Hex keys still accepted (never used to sign) while a key is being rotated.
    previous_signing_keys_hex: list[str] = []
    #: Codecs whose jobs this worker decodes (``None``: every registered one); jobs
    #: in others are dead-lettered.
    codecs: list[str] | None = None
    #: Packages the ``safe`` codec may import from (``None``: any importable callable).
    safe_allow: list[str] | None = None
    #: Modules imported at start (where job functions live).
    imports: list[str] = []
    #: Seconds one attempt may run when the job sets no timeout of its own.
    default_timeout: float | None = None
    #: Prepended to ``sys.path`` at start.
    sys_path: list[str] = []
    #: Seconds in-flight jobs get to finish on shutdown before being left for redelivery.
    shutdown_timeout: float = 30.0
    #: Largest encoded result (``[results] max_bytes``); one over the server's
    #: ``max_payload`` goes through the object store, one over this fails ``oversize``.
    max_bytes: int = DEFAULT_MAX_BYTES
    name: str = ""
