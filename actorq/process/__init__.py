"""What every actor process shares: its entry point (logging, signals, ready) and the
heartbeats it publishes for ``actorq ps``."""
