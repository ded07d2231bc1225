"""``actorq up``: the supervision tree built from a config, child specs and child entry."""
