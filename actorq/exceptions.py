"""The exceptions actorq raises, in one tree.

::

    ActorqError
     ├── UsageError                   an API called in a way it does not support (also ValueError)
     │    └── PayloadTooLarge          a job's arguments or an actor message over its size limit
     ├── ClientClosed                 a client used after close()
     ├── ConfigError                  a config file or option is wrong
     │    ├── ConfigFileError          ... in a file: carries the path, key and line
     │    └── DependencyError          depends_on names an unknown job, or a cycle
     ├── ServerError                  the embedded nats-server cannot start
     │    ├── ServerBinaryNotFound
     │    └── PortInUse
     ├── BrokerError                  talking to NATS failed
     │    ├── ConnectionFailed
     │    ├── BrokerTimeout
     │    ├── NotFound                 a KV key, stream or consumer is missing
     │    ├── Conflict                 a conditional write lost: someone wrote first
     │    │    └── KeyExists           a KV create found the key already there
     │    └── IncompatibleStream       a provisioned stream/bucket exists with other settings
     ├── CodecError                   a payload cannot be encoded or decoded
     │    └── SignatureError           a payload's HMAC signature is missing or wrong
     ├── JobError                     a job did not produce a result
     │    ├── JobTimeout
     │    ├── JobCancelled
     │    └── JobFailed                carries the remote exception type, message, traceback
     └── ActorError                   messaging an actor failed
          ├── ActorDefinitionError     an Actor subclass's handlers are wrong (also a TypeError)
          ├── ActorUnavailable         nobody serves that actor name right now
          ├── SpawnError               spawn could not start the actor (name taken, start failed)
          ├── AskTimeout               no reply within the ask's timeout (also a TimeoutError)
          └── RemoteError              the handler raised: remote type, message, traceback
               └── UnhandledMessage    the actor has no handler for that message type

Every message says what to do next.
"""

from __future__ import annotations

__all__ = [
    "ActorDefinitionError",
    "ActorError",
    "ActorUnavailable",
    "ActorqError",
    "AskTimeout",
    "BrokerError",
    "BrokerTimeout",
    "ClientClosed",
    "CodecError",
    "ConfigError",
    "ConfigFileError",
    "Conflict",
    "ConnectionFailed",
    "DependencyError",
    "IncompatibleStream",
    "JobCancelled",
    "JobError",
    "JobFailed",
    "JobTimeout",
    "KeyExists",
    "NotFound",
    "PayloadTooLarge",
    "PortInUse",
    "RemoteError",
    "ServerBinaryNotFound",
    "ServerError",
    "SignatureError",
    "SpawnError",
    "UnhandledMessage",
    "UsageError",
]


class ActorqError(Exception):
    """Root of every error actorq raises on purpose."""


class UsageError(ActorqError, ValueError):
    """An API was called in a way it does not support: an unknown option, options that
    exclude each other, a blocking call from the thread that would have to serve it.

    The message names what to change.
    """


class PayloadTooLarge(UsageError):
    """What was to be sent (a job's arguments, an actor message) is over its size limit;
    the message names both sizes. Send less, or store it elsewhere and send a reference.
    """


class ClientClosed(ActorqError):
    """The client was closed (or is closing); make a new one."""


class ConfigError(ActorqError):
    """A configuration file or option is invalid; the message names the key (and line)."""


class DependencyError(ConfigError):
    """``depends_on`` names a job that does not exist, or would close a cycle."""


class ConfigFileError(ConfigError):
    """A config file is invalid: ``source``, ``line`` (or ``None``) and ``key``
    (``"queues[1].concurency"``, or ``""`` for the file as a whole) say where."""

    def __init__(self, source: str, line: int | None, key: str, problem: str) -> None:
        self.source = source
        self.line = line
        self.key = key
        self.problem = problem
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")


class ServerError(ActorqError):
    """The embedded nats-server could not be started or stopped."""


class ServerBinaryNotFound(ServerError):
    """No ``nats-server`` executable was found."""


class PortInUse(ServerError):
    """The port asked for the embedded server is already taken."""


class BrokerError(ActorqError):
    """An operation against NATS failed."""


class ConnectionFailed(BrokerError):
    """Could not connect to any of the NATS servers given."""


class BrokerTimeout(BrokerError):
    """NATS did not answer in time."""


class NotFound(BrokerError):
    """A KV key, stream, consumer or message does not exist."""


class Conflict(BrokerError):
    """A conditional write lost: the key or subject changed since it was read.

    Read the current value again and retry, or give up if the change makes yours moot.
    """


class KeyExists(Conflict):
    """A KV ``create`` found the key already present."""


class IncompatibleStream(BrokerError):
    """A stream or bucket exists already with settings actorq cannot use."""


class CodecError(ActorqError):
    """A payload could not be encoded or decoded."""


class SignatureError(CodecError):
    """A payload's HMAC signature is missing or does not match."""


class JobError(ActorqError):
    """A job did not produce a result."""


class JobTimeout(JobError):
    """Waiting for a job (or the job itself) ran past its timeout."""


class JobCancelled(JobError):
    """The job was cancelled before it produced a result."""


class JobFailed(JobError):
    """The job raised; ``exc_type``, ``exc_message`` and ``traceback`` tell what and where.

    Example::

        try:
            await job.result(timeout=10)
        except JobFailed as e:
            print(e.exc_type, e.traceback)
    """

    def __init__(self, job_id: str, exc_type: str, exc_message: str, traceback: str) -> None:
        self.job_id = job_id
        self.exc_type = exc_type
        self.exc_message = exc_message
        self.traceback = traceback
        super().__init__(f"job {job_id} failed: {exc_type}: {exc_message}")


class ActorError(ActorqError):
    """Sending to, asking, or defining an actor failed."""


class ActorDefinitionError(ActorError, TypeError):
    """An :class:`~actorq.Actor` subclass is wrong, e.g. a handler's message type is not
    a tagged ``msgspec.Struct``; raised when the class is first spawned or checked."""


class ActorUnavailable(ActorError):
    """No process serves that actor name right now (NATS had no responders).

    At-most-once mailboxes only: a durable mailbox stores the message instead.
    """


class SpawnError(ActorError):
    """``spawn`` could not start the actor: its name is taken in this tree, or it
    failed or timed out starting. The supervisor's own error is the ``__cause__``."""


class AskTimeout(ActorError, TimeoutError):
    """No reply arrived within the ask's ``timeout``; the actor may still handle it."""


class RemoteError(ActorError):
    """The actor's handler raised; ``exc_type``, ``exc_message`` and ``traceback`` say
    what and where (the traceback is the remote one).

    Example::

        try:
            await ref.ask(Divide(1, 0))
        except actorq.RemoteError as e:
            print(e.exc_type, e.traceback)
    """

    def __init__(self, actor: str, exc_type: str, exc_message: str, traceback: str) -> None:
        self.actor = actor
        self.exc_type = exc_type
        self.exc_message = exc_message
        self.traceback = traceback
        super().__init__(f"actor {actor!r} raised {exc_type}: {exc_message}")


class UnhandledMessage(RemoteError):
    """The actor has no handler for the message's type (or could not decode it)."""
