"""``python -m actorq`` runs the command line."""

from actorq.cli.main import app

app(prog_name="actorq")
