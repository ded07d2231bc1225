"""The public surface is explicit: a change to it is a deliberate change to this list."""

from __future__ import annotations

import actorq
import actorq.exceptions

EXPECTED = {
    "ActorqError", "Backoff", "BrokerError", "BrokerTimeout", "Client", "Codec", "CodecError",
    "ConfigError", "Connection", "ConnectionFailed", "DeadLetter", "EmbeddedServer",
    "EnqueueOptions", "ErrorInfo", "IncompatibleStream", "Job", "JobCancelled", "JobEnvelope",
    "JobError", "JobFailed", "JobOptions", "JobOutcome", "JobRecord", "JobStatus", "JobTimeout",
    "JsMsg", "KeyExists", "KeyValueStore", "KvEntry", "Message", "Namespace",
    "NatsServerProcess", "NotFound", "OutMsg", "PickleCodec", "PortInUse", "PubAck",
    "PullConsumer", "SafeCodec", "ServerBinaryNotFound", "ServerError", "SignatureError",
    "Signer", "SyncClient", "SyncJob", "configure", "default_client", "find_nats_server",
    "get_codec", "open_client", "open_nats", "open_nats_server", "register_codec", "send",
    "DependencyError", "ScheduleInfo",
} | {
    # user actors (issue 7)
    "Actor", "ActorDefinitionError", "ActorError", "ActorRef", "ActorSupervisor",
    "ActorUnavailable", "AskTimeout", "RemoteError", "UnhandledMessage", "handler",
    "open_supervisor", "ref",
} | {
    # the config file of `actorq up` (issue 7)
    "Config", "ConfigFileError", "load_config",
}  # fmt: skip


def test_the_exported_names_are_exactly_the_public_api() -> None:
    assert set(actorq.__all__) == EXPECTED
    for name in actorq.__all__:
        assert getattr(actorq, name) is not None


def test_every_exception_derives_from_actorq_error() -> None:
    for name in actorq.exceptions.__all__:
        exc = getattr(actorq.exceptions, name)
        assert issubclass(exc, actorq.ActorqError)
        assert name in actorq.__all__
