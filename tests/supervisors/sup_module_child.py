"""A child started as ``python -m sup_module_child``: it sets itself up."""

from __future__ import annotations

import threading

from supervisors.child_runtime import setup_child

if __name__ == "__main__":
    ready = setup_child()
    ready()
    threading.Event().wait()
