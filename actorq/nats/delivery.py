"""What a connection hands out and takes: delivered messages and publish acks."""

from __future__ import annotations

from collections.abc import Mapping

from nats.aio.msg import Msg as _NatsMsg

__all__ = ["JsMsg", "Message", "OutMsg", "PubAck"]


class Message:
    """A core NATS message (subscription or request reply)."""

    __slots__ = ("data", "headers", "reply", "subject")

    def __init__(self, raw: _NatsMsg) -> None:
        self.subject: str = raw.subject
        self.data: bytes = raw.data
        self.headers: dict[str, str] = dict(raw.headers or {})
        self.reply: str = raw.reply


class JsMsg:
    """A message delivered by a JetStream pull consumer; ack it via its consumer."""

    __slots__ = ("_fields", "_raw")

    def __init__(self, raw: _NatsMsg) -> None:
        self._raw = raw
        self._fields: tuple[int, int] | None = None

    @property
    def subject(self) -> str:
        """Subject the message was published to."""
        return str(self._raw.subject)

    @property
    def data(self) -> bytes:
        """Payload bytes."""
        return bytes(self._raw.data)

    @property
    def headers(self) -> dict[str, str]:
        """Message headers (empty dict when none)."""
        return dict(self._raw.headers or {})

    @property
    def stream_seq(self) -> int:
        """Sequence number of the message in its stream."""
        return self._ack_fields()[1]

    @property
    def num_delivered(self) -> int:
        """How many times JetStream has delivered it (1 on the first delivery)."""
        return self._ack_fields()[0]

    def _ack_fields(self) -> tuple[int, int]:
        # (delivered, stream sequence) straight from the ack subject: nats-py's
        # metadata parse builds several objects and cost ~4% of a queue actor.
        if self._fields is not None:
            return self._fields
        reply: str = self._raw.reply or ""
        tokens = reply.split(".")
        if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
            fields = int(tokens[4]), int(tokens[5])
        elif len(tokens) >= 11:  # with domain and account hash in front
            fields = int(tokens[6]), int(tokens[7])
        else:
            meta = self._raw.metadata
            fields = int(meta.num_delivered), int(meta.sequence.stream)
        self._fields = fields
        return fields


class PubAck:
    """The server's acknowledgement of a JetStream publish."""

    __slots__ = ("duplicate", "seq", "stream")

    def __init__(self, stream: str, seq: int, duplicate: bool) -> None:
        self.stream = stream
        self.seq = seq
        self.duplicate = duplicate

    def __repr__(self) -> str:
        return f"PubAck(stream={self.stream!r}, seq={self.seq}, duplicate={self.duplicate})"


class OutMsg:
    """One message for :meth:`Connection.js_publish_many`."""

    __slots__ = ("data", "headers", "msg_id", "subject")

    def __init__(
        self,
        subject: str,
        data: bytes,
        headers: Mapping[str, str] | None = None,
        msg_id: str | None = None,
    ) -> None:
        self.subject = subject
        self.data = data
        self.headers = headers
        self.msg_id = msg_id
