"""What crosses the wire: the msgspec message types between actors, and the job codecs.

Every message between actors is a :class:`msgspec.Struct` declared in
:mod:`actorq.wire.messages`; job functions and arguments travel through a
:class:`~actorq.wire.codec.Codec` (``pickle`` by default, ``safe`` for untrusted
boundaries), optionally signed with a :class:`~actorq.wire.codec.Signer`.
"""

from actorq.wire.codec import PickleCodec as PickleCodec
from actorq.wire.codec import get_codec as get_codec
from actorq.wire.messages import ErrorInfo as ErrorInfo
from actorq.wire.messages import JobEnvelope as JobEnvelope
from actorq.wire.messages import JobOptions as JobOptions
from actorq.wire.messages import JobOutcome as JobOutcome

__all__ = ["ErrorInfo", "JobEnvelope", "JobOptions", "JobOutcome", "PickleCodec", "get_codec"]
