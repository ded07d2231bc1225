"""Send a job from plain, blocking code and print its result: no event loop in sight.

Workers for the ``default`` queue must be running against the same server and namespace,
with ``examples/`` importable (they import :mod:`tasks` to run the job). From the
repository root, next to ``actorq up examples/config.toml``::

    python examples/sync_send.py 2 3

The runtime requires a password and signed jobs; both, and its URL, come from the
credentials file it keeps in its data dir (``.actorq/nats/credentials.json``), which
``actorq.send`` finds by itself. ``ACTORQ_NATS_URL`` and ``ACTORQ_NAMESPACE`` (default
``actorq``) choose another server or namespace. The connection is opened on the first
send, reused by every later one, and closed when the script exits.
"""

from __future__ import annotations

import argparse

from tasks import add

import actorq


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=int)
    parser.add_argument("b", type=int)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait")
    args = parser.parse_args()

    job = actorq.send("default", add, args.a, args.b)
    print(f"sent job {job.id} to queue {job.queue!r}")
    print(f"result: {job.result(timeout=args.timeout)}")


if __name__ == "__main__":
    main()
