"""``python -m actorq`` runs the command line."""

from .cli import app

app(prog_name="actorq")
