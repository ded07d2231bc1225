"""User actors: the :class:`~actorq.actors.actor.Actor` base, references, the process host
and the actor supervisor."""
