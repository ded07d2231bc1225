"""The public surface is explicit: a change to it is a deliberate change to this list."""

from __future__ import annotations

import actorq
import actorq.exceptions
import actorq.nats
import actorq.wire
import supervisors

EXPECTED = {
    # jobs
    "Client", "open_client", "Job", "EnqueueOptions", "SyncClient", "SyncJob", "configure",
    "send", "asyncio_job", "JobRecord", "JobStatus", "RetryBackoff", "ScheduleInfo",
    "DeadLetter",
    # actors
    "Actor", "handler", "ActorRef", "ref", "ActorSupervisor", "open_actor_supervisor",
    # codecs, config, the embedded server
    "Codec", "SafeCodec", "Signer", "register_codec", "Config", "load_config",
    "open_nats_server",
    # the errors most code catches; the whole tree is in actorq.exceptions
    "ActorqError", "ConfigError", "BrokerError", "ConnectionFailed", "CodecError",
    "JobError", "JobFailed", "JobTimeout", "JobCancelled", "ActorError", "RemoteError",
    "AskTimeout",
}  # fmt: skip

TRANSPORT = {
    "Connection", "EmbeddedServer", "JsMsg", "KeyValueStore", "KvEntry", "Message",
    "Namespace", "NatsServerProcess", "OutMsg", "PubAck", "PullConsumer",
    "find_nats_server", "open_nats", "open_nats_server",
}  # fmt: skip


def test_the_exported_names_are_exactly_the_public_api() -> None:
    assert set(actorq.__all__) == EXPECTED
    assert len(actorq.__all__) <= 40
    for name in actorq.__all__:
        assert getattr(actorq, name) is not None


def test_transport_types_live_in_actorq_nats() -> None:
    assert set(actorq.nats.__all__) == TRANSPORT
    for name in TRANSPORT:
        assert getattr(actorq.nats, name) is not None
    for name in actorq.wire.__all__:
        assert getattr(actorq.wire, name) is not None


def test_every_exception_derives_from_actorq_error() -> None:
    for name in actorq.exceptions.__all__:
        exc = getattr(actorq.exceptions, name)
        assert issubclass(exc, actorq.ActorqError)


def test_no_name_means_two_things_across_actorq_and_supervisors() -> None:
    shared = set(actorq.__all__) & set(supervisors.__all__)
    assert shared == set(), f"same name, two meanings: {sorted(shared)}"
