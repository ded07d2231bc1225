"""Task children a test can stop on demand, and a record of starts and stops."""

from __future__ import annotations

import trio

from supervisors import Restart, TaskSpec


class Controller:
    """Builds task specs whose runs the test ends with :meth:`fire`."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self._triggers: dict[str, trio.Event] = {}
        self._actions: dict[str, str] = {}

    def spec(self, id: str, restart: Restart = Restart.PERMANENT) -> TaskSpec:
        """A task child named ``id`` that runs until fired or cancelled."""
        return TaskSpec(id=id, target=self.run, args=(id,), restart=restart, shutdown=1.0)

    async def run(self, id: str, task_status: trio.TaskStatus[None]) -> None:
        """The task body: log start, wait for the trigger, log stop, act."""
        trigger = self._triggers[id] = trio.Event()
        self.log.append(("start", id))
        task_status.started()
        try:
            await trigger.wait()
        finally:
            self.log.append(("stop", id))
        if self._actions.pop(id) == "exception":
            raise RuntimeError(f"{id} failed on purpose")

    def fire(self, id: str, action: str) -> None:
        """End the current run of ``id``: ``"normal"`` returns, ``"exception"`` raises."""
        self._actions[id] = action
        self._triggers[id].set()


async def crash_after_start(task_status: trio.TaskStatus[None]) -> None:
    """Reports ready, then fails at once."""
    task_status.started()
    raise ValueError("boom")


async def idle(task_status: trio.TaskStatus[None]) -> None:
    """Reports ready, then waits to be cancelled."""
    task_status.started()
    await trio.sleep_forever()
