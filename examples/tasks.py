"""Job functions for the examples. Workers import them by name, so this module must be
importable where the workers run (here: put ``examples/`` on ``sys.path`` or PYTHONPATH).
"""

from __future__ import annotations


def add(a: int, b: int) -> int:
    """Add two numbers (a stand-in for real work)."""
    return a + b


def greet(name: str) -> str:
    """Build a greeting."""
    return f"hello, {name}"
