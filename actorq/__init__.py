"""actorq: an actor-model runtime on Trio that doubles as a job queue on NATS JetStream."""

from __future__ import annotations

import logging

from actorq.actors.actor import Actor as Actor
from actorq.actors.actor import handler as handler
from actorq.actors.refs import ActorRef as ActorRef
from actorq.actors.refs import ref as ref
from actorq.actors.supervisor import ActorSupervisor as ActorSupervisor
from actorq.actors.supervisor import open_supervisor as open_supervisor
from actorq.config.schema import Config as Config
from actorq.config.schema import ConfigFileError as ConfigFileError
from actorq.config.schema import load_config as load_config
from actorq.exceptions import ActorDefinitionError as ActorDefinitionError
from actorq.exceptions import ActorError as ActorError
from actorq.exceptions import ActorqError as ActorqError
from actorq.exceptions import ActorUnavailable as ActorUnavailable
from actorq.exceptions import AskTimeout as AskTimeout
from actorq.exceptions import BrokerError as BrokerError
from actorq.exceptions import BrokerTimeout as BrokerTimeout
from actorq.exceptions import CodecError as CodecError
from actorq.exceptions import ConfigError as ConfigError
from actorq.exceptions import ConnectionFailed as ConnectionFailed
from actorq.exceptions import DependencyError as DependencyError
from actorq.exceptions import IncompatibleStream as IncompatibleStream
from actorq.exceptions import JobCancelled as JobCancelled
from actorq.exceptions import JobError as JobError
from actorq.exceptions import JobFailed as JobFailed
from actorq.exceptions import JobTimeout as JobTimeout
from actorq.exceptions import KeyExists as KeyExists
from actorq.exceptions import NotFound as NotFound
from actorq.exceptions import PortInUse as PortInUse
from actorq.exceptions import RemoteError as RemoteError
from actorq.exceptions import ServerBinaryNotFound as ServerBinaryNotFound
from actorq.exceptions import ServerError as ServerError
from actorq.exceptions import SignatureError as SignatureError
from actorq.exceptions import UnhandledMessage as UnhandledMessage
from actorq.jobs.client import Client as Client
from actorq.jobs.client import EnqueueOptions as EnqueueOptions
from actorq.jobs.client import Job as Job
from actorq.jobs.client import open_client as open_client
from actorq.jobs.schedules import ScheduleInfo as ScheduleInfo
from actorq.jobs.sync_client import SyncClient as SyncClient
from actorq.jobs.sync_client import SyncJob as SyncJob
from actorq.jobs.sync_client import configure as configure
from actorq.jobs.sync_client import default_client as default_client
from actorq.jobs.sync_client import send as send
from actorq.nats.connection import Connection as Connection
from actorq.nats.connection import JsMsg as JsMsg
from actorq.nats.connection import Message as Message
from actorq.nats.connection import OutMsg as OutMsg
from actorq.nats.connection import PubAck as PubAck
from actorq.nats.connection import PullConsumer as PullConsumer
from actorq.nats.connection import open_nats as open_nats
from actorq.nats.embedded_server import EmbeddedServer as EmbeddedServer
from actorq.nats.embedded_server import NatsServerProcess as NatsServerProcess
from actorq.nats.embedded_server import find_nats_server as find_nats_server
from actorq.nats.embedded_server import open_nats_server as open_nats_server
from actorq.nats.kv import KeyValueStore as KeyValueStore
from actorq.nats.kv import KvEntry as KvEntry
from actorq.nats.provisioning import Namespace as Namespace
from actorq.wire.codec import Codec as Codec
from actorq.wire.codec import PickleCodec as PickleCodec
from actorq.wire.codec import SafeCodec as SafeCodec
from actorq.wire.codec import Signer as Signer
from actorq.wire.codec import get_codec as get_codec
from actorq.wire.codec import register_codec as register_codec
from actorq.wire.messages import Backoff as Backoff
from actorq.wire.messages import DeadLetter as DeadLetter
from actorq.wire.messages import ErrorInfo as ErrorInfo
from actorq.wire.messages import JobEnvelope as JobEnvelope
from actorq.wire.messages import JobOptions as JobOptions
from actorq.wire.messages import JobOutcome as JobOutcome
from actorq.wire.messages import JobRecord as JobRecord
from actorq.wire.messages import JobStatus as JobStatus

__version__ = "0.1.0"

__all__ = [
    "Actor",
    "ActorDefinitionError",
    "ActorError",
    "ActorRef",
    "ActorSupervisor",
    "ActorUnavailable",
    "ActorqError",
    "AskTimeout",
    "Backoff",
    "BrokerError",
    "BrokerTimeout",
    "Client",
    "Codec",
    "CodecError",
    "Config",
    "ConfigError",
    "ConfigFileError",
    "Connection",
    "ConnectionFailed",
    "DeadLetter",
    "DependencyError",
    "EmbeddedServer",
    "EnqueueOptions",
    "ErrorInfo",
    "IncompatibleStream",
    "Job",
    "JobCancelled",
    "JobEnvelope",
    "JobError",
    "JobFailed",
    "JobOptions",
    "JobOutcome",
    "JobRecord",
    "JobStatus",
    "JobTimeout",
    "JsMsg",
    "KeyExists",
    "KeyValueStore",
    "KvEntry",
    "Message",
    "Namespace",
    "NatsServerProcess",
    "NotFound",
    "OutMsg",
    "PickleCodec",
    "PortInUse",
    "PubAck",
    "PullConsumer",
    "RemoteError",
    "SafeCodec",
    "ScheduleInfo",
    "ServerBinaryNotFound",
    "ServerError",
    "SignatureError",
    "Signer",
    "SyncClient",
    "SyncJob",
    "UnhandledMessage",
    "configure",
    "default_client",
    "find_nats_server",
    "get_codec",
    "handler",
    "load_config",
    "open_client",
    "open_nats",
    "open_nats_server",
    "open_supervisor",
    "ref",
    "register_codec",
    "send",
]

logging.getLogger("actorq").addHandler(logging.NullHandler())
