"""What crosses the wire: the msgspec message types between actors, and the job codecs."""
