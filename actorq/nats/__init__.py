"""The transport: everything that speaks NATS, and the only package that imports ``nats``.

nats-py is asyncio; it runs on one asyncio loop in a helper thread (:mod:`.bridge`), and
the rest of actorq talks to it from Trio through :class:`~actorq.nats.connection.Connection`.
Here live the connection, the JetStream publisher, KV buckets, stream provisioning, the
actor transport and its Trio-native link, and the embedded ``nats-server``.
"""
