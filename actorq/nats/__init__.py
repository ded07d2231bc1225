"""The transport: everything that speaks NATS, and the only package that imports ``nats``.

nats-py is asyncio; it runs on one asyncio loop in a helper thread (:mod:`.bridge`), and
the rest of actorq talks to it from Trio through :class:`Connection`. Programs that
must run on that loop for speed hold its typed asyncio side (:mod:`.loop`). Here live
the connection, the JetStream publisher, KV buckets, stream provisioning, the actor
transport and its Trio-native link, and the embedded ``nats-server``.

Example::

    async with open_nats("nats://127.0.0.1:4222") as nc:
        ack = await nc.js_publish("actorq.jobs.default.x", b"...", msg_id="x")
"""

from actorq.nats.connection import Connection as Connection
from actorq.nats.connection import PullConsumer as PullConsumer
from actorq.nats.connection import open_nats as open_nats
from actorq.nats.delivery import JsMsg as JsMsg
from actorq.nats.delivery import Message as Message
from actorq.nats.delivery import OutMsg as OutMsg
from actorq.nats.delivery import PubAck as PubAck
from actorq.nats.embedded_server import EmbeddedServer as EmbeddedServer
from actorq.nats.embedded_server import NatsServerProcess as NatsServerProcess
from actorq.nats.embedded_server import find_nats_server as find_nats_server
from actorq.nats.embedded_server import open_nats_server as open_nats_server
from actorq.nats.kv import KeyValueStore as KeyValueStore
from actorq.nats.kv import KvEntry as KvEntry
from actorq.nats.provisioning import Namespace as Namespace

__all__ = [
    "Connection",
    "EmbeddedServer",
    "JsMsg",
    "KeyValueStore",
    "KvEntry",
    "Message",
    "Namespace",
    "NatsServerProcess",
    "OutMsg",
    "PubAck",
    "PullConsumer",
    "find_nats_server",
    "open_nats",
    "open_nats_server",
]
