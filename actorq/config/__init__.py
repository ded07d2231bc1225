"""The ``actorq up`` config file: schema, environment overrides, key positions, example."""
