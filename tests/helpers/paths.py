"""Where the repository's parts are, for tests that run its examples, docs and CLI."""

from pathlib import Path

#: The repository root (the directory holding ``pyproject.toml``).
ROOT = Path(__file__).resolve().parents[2]
#: The runnable examples.
EXAMPLES = ROOT / "examples"
