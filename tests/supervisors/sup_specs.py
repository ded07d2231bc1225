"""Spec builders shared by the supervisors tests."""

from __future__ import annotations

import os
from typing import Any

from supervisors import ProcessSpec

HERE = os.path.dirname(os.path.abspath(__file__))


def pspec(id: str, target: str, *args: str, **options: Any) -> ProcessSpec:
    """A ProcessSpec running ``sup_targets:<target>``, importable from the child."""
    return ProcessSpec(
        id=id,
        target=target if ":" in target else f"sup_targets:{target}",
        args=args,
        env={"PYTHONPATH": HERE},
        **options,
    )
