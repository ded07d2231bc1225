"""The web dashboard: the runtime live in a browser, with the actions operators need.

A Starlette app (:mod:`~actorq.dashboard.app`) served by Hypercorn's Trio worker in
the caller's own ``trio.run`` (:func:`serve_dashboard`). Its pages
(:mod:`~actorq.dashboard.pages`) are filled from a JSON API
(:mod:`~actorq.dashboard.api`) that reads what the runtime publishes
(:mod:`~actorq.dashboard.gather`, :mod:`~actorq.dashboard.records`); live figures come
from one shared event publisher (:mod:`~actorq.dashboard.events`). Access rules:
:mod:`~actorq.dashboard.auth`. See ``docs/dashboard.md``.
"""

from actorq.dashboard.server import DashboardInfo as DashboardInfo
from actorq.dashboard.server import serve_dashboard as serve_dashboard

__all__ = ["DashboardInfo", "serve_dashboard"]
