"""actorq: an actor-model runtime on Trio that doubles as a job queue on NATS JetStream."""

from __future__ import annotations

import logging

from .actor_refs import ActorRef as ActorRef
from .actor_refs import ref as ref
from .actor_supervisor import ActorSupervisor as ActorSupervisor
from .actor_supervisor import open_supervisor as open_supervisor
from .actors import Actor as Actor
from .actors import handler as handler
from .client import Client as Client
from .client import EnqueueOptions as EnqueueOptions
from .client import Job as Job
from .client import open_client as open_client
from .codec import Codec as Codec
from .codec import PickleCodec as PickleCodec
from .codec import SafeCodec as SafeCodec
from .codec import Signer as Signer
from .codec import get_codec as get_codec
from .codec import register_codec as register_codec
from .config import Config as Config
from .config import ConfigFileError as ConfigFileError
from .config import load_config as load_config
from .connection import Connection as Connection
from .connection import JsMsg as JsMsg
from .connection import Message as Message
from .connection import OutMsg as OutMsg
from .connection import PubAck as PubAck
from .connection import PullConsumer as PullConsumer
from .connection import open_nats as open_nats
from .embedded_server import EmbeddedServer as EmbeddedServer
from .embedded_server import NatsServerProcess as NatsServerProcess
from .embedded_server import find_nats_server as find_nats_server
from .embedded_server import open_nats_server as open_nats_server
from .exceptions import ActorDefinitionError as ActorDefinitionError
from .exceptions import ActorError as ActorError
from .exceptions import ActorqError as ActorqError
from .exceptions import ActorUnavailable as ActorUnavailable
from .exceptions import AskTimeout as AskTimeout
from .exceptions import BrokerError as BrokerError
from .exceptions import BrokerTimeout as BrokerTimeout
from .exceptions import CodecError as CodecError
from .exceptions import ConfigError as ConfigError
from .exceptions import ConnectionFailed as ConnectionFailed
from .exceptions import DependencyError as DependencyError
from .exceptions import IncompatibleStream as IncompatibleStream
from .exceptions import JobCancelled as JobCancelled
from .exceptions import JobError as JobError
from .exceptions import JobFailed as JobFailed
from .exceptions import JobTimeout as JobTimeout
from .exceptions import KeyExists as KeyExists
from .exceptions import NotFound as NotFound
from .exceptions import PortInUse as PortInUse
from .exceptions import RemoteError as RemoteError
from .exceptions import ServerBinaryNotFound as ServerBinaryNotFound
from .exceptions import ServerError as ServerError
from .exceptions import SignatureError as SignatureError
from .exceptions import UnhandledMessage as UnhandledMessage
from .kv import KeyValueStore as KeyValueStore
from .kv import KvEntry as KvEntry
from .messages import Backoff as Backoff
from .messages import DeadLetter as DeadLetter
from .messages import ErrorInfo as ErrorInfo
from .messages import JobEnvelope as JobEnvelope
from .messages import JobOptions as JobOptions
from .messages import JobOutcome as JobOutcome
from .messages import JobRecord as JobRecord
from .messages import JobStatus as JobStatus
from .provision import Namespace as Namespace
from .schedules import ScheduleInfo as ScheduleInfo
from .sync_client import SyncClient as SyncClient
from .sync_client import SyncJob as SyncJob
from .sync_client import configure as configure
from .sync_client import default_client as default_client
from .sync_client import send as send

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
