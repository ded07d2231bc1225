"""The ``actorq`` command line: ``up``, ``ps``, ``top``, ``queues``, ``jobs``, ``schedules``...

The Typer application is :data:`app` (the ``actorq`` console script); exit codes are
named in :mod:`actorq.cli.common`.
"""

from actorq.cli.main import app as app

__all__ = ["app"]
