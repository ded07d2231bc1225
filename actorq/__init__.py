"""actorq: an actor-model runtime on Trio that doubles as a job queue on NATS JetStream."""

from __future__ import annotations

import logging

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
from .exceptions import ActorqError as ActorqError
from .exceptions import BrokerError as BrokerError
from .exceptions import BrokerTimeout as BrokerTimeout
from .exceptions import CodecError as CodecError
from .exceptions import ConfigError as ConfigError
from .exceptions import ConnectionFailed as ConnectionFailed
from .exceptions import IncompatibleStream as IncompatibleStream
from .exceptions import JobError as JobError
from .exceptions import JobFailed as JobFailed
from .exceptions import JobTimeout as JobTimeout
from .exceptions import KeyExists as KeyExists
from .exceptions import NotFound as NotFound
from .exceptions import PortInUse as PortInUse
from .exceptions import ServerBinaryNotFound as ServerBinaryNotFound
from .exceptions import ServerError as ServerError
from .exceptions import SignatureError as SignatureError
from .kv import KeyValueStore as KeyValueStore
from .kv import KvEntry as KvEntry

__version__ = "0.1.0"

__all__ = [
    "ActorqError",
    "BrokerError",
    "BrokerTimeout",
    "CodecError",
    "ConfigError",
    "Connection",
    "ConnectionFailed",
    "EmbeddedServer",
    "IncompatibleStream",
    "JobError",
    "JobFailed",
    "JobTimeout",
    "JsMsg",
    "KeyExists",
    "KeyValueStore",
    "KvEntry",
    "Message",
    "NatsServerProcess",
    "NotFound",
    "OutMsg",
    "PortInUse",
    "PubAck",
    "PullConsumer",
    "ServerBinaryNotFound",
    "ServerError",
    "SignatureError",
    "find_nats_server",
    "open_nats",
    "open_nats_server",
]

logging.getLogger("actorq").addHandler(logging.NullHandler())
