"""actorq: an actor-model runtime on Trio that doubles as a job queue on NATS JetStream.

The names here are the everyday surface: jobs (:func:`open_client`, :func:`send`),
actors (:class:`Actor`, :func:`open_actor_supervisor`), codecs, the config file, the
embedded server and the errors to catch. The parts underneath have their own
packages: :mod:`actorq.nats` (connections, KV, the embedded server),
:mod:`actorq.wire` (message types, codecs), :mod:`actorq.exceptions` (every error).
"""

from __future__ import annotations

import logging

from actorq.actors.actor import Actor as Actor
from actorq.actors.actor import handler as handler
from actorq.actors.refs import ActorRef as ActorRef
from actorq.actors.refs import ref as ref
from actorq.actors.supervisor import ActorSupervisor as ActorSupervisor
from actorq.actors.supervisor import open_actor_supervisor as open_actor_supervisor
from actorq.config.schema import Config as Config
from actorq.config.schema import load_config as load_config
from actorq.exceptions import ActorError as ActorError
from actorq.exceptions import ActorqError as ActorqError
from actorq.exceptions import AskTimeout as AskTimeout
from actorq.exceptions import BrokerError as BrokerError
from actorq.exceptions import CodecError as CodecError
from actorq.exceptions import ConfigError as ConfigError
from actorq.exceptions import ConnectionFailed as ConnectionFailed
from actorq.exceptions import JobCancelled as JobCancelled
from actorq.exceptions import JobError as JobError
from actorq.exceptions import JobFailed as JobFailed
from actorq.exceptions import JobTimeout as JobTimeout
from actorq.exceptions import RemoteError as RemoteError
from actorq.jobs.client import Client as Client
from actorq.jobs.client import Job as Job
from actorq.jobs.client import open_client as open_client
from actorq.jobs.default_client import configure as configure
from actorq.jobs.default_client import send as send
from actorq.jobs.job_kinds import asyncio_job as asyncio_job
from actorq.jobs.options import EnqueueOptions as EnqueueOptions
from actorq.jobs.schedules import ScheduleInfo as ScheduleInfo
from actorq.jobs.sync_client import SyncClient as SyncClient
from actorq.jobs.sync_client import SyncJob as SyncJob
from actorq.nats.embedded_server import open_nats_server as open_nats_server
from actorq.wire.codec import Codec as Codec
from actorq.wire.codec import SafeCodec as SafeCodec
from actorq.wire.codec import Signer as Signer
from actorq.wire.codec import register_codec as register_codec
from actorq.wire.messages import DeadLetter as DeadLetter
from actorq.wire.messages import JobRecord as JobRecord
from actorq.wire.messages import JobStatus as JobStatus
from actorq.wire.messages import RetryBackoff as RetryBackoff

__version__ = "0.1.0"

__all__ = [
    "Actor",
    "ActorError",
    "ActorRef",
    "ActorSupervisor",
    "ActorqError",
    "AskTimeout",
    "BrokerError",
    "Client",
    "Codec",
    "CodecError",
    "Config",
    "ConfigError",
    "ConnectionFailed",
    "DeadLetter",
    "EnqueueOptions",
    "Job",
    "JobCancelled",
    "JobError",
    "JobFailed",
    "JobRecord",
    "JobStatus",
    "JobTimeout",
    "RemoteError",
    "RetryBackoff",
    "SafeCodec",
    "ScheduleInfo",
    "Signer",
    "SyncClient",
    "SyncJob",
    "asyncio_job",
    "configure",
    "handler",
    "load_config",
    "open_actor_supervisor",
    "open_client",
    "open_nats_server",
    "ref",
    "register_codec",
    "send",
]

logging.getLogger("actorq").addHandler(logging.NullHandler())
