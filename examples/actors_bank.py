"""User actors: a bank account in its own process, an auditor as a Trio task.

Starts an embedded nats-server, spawns ``Account`` as a supervised *process* with a
durable mailbox and ``Auditor`` as a Trio task in this process, then sends, asks, and
shows a remote error. The account tells the auditor about every deposit, by name.

Run it: ``python examples/actors_bank.py``
"""

from __future__ import annotations

import msgspec
import trio

import actorq


# Messages are msgspec Structs with tag=True: the tag picks the handler on arrival.
class Deposit(msgspec.Struct, tag=True):
    amount: int


class Withdraw(msgspec.Struct, tag=True):
    amount: int


class Balance(msgspec.Struct, tag=True):
    pass


class Audited(msgspec.Struct, tag=True):
    what: str
    amount: int


class Account(actorq.Actor):
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.balance = 0

    @actorq.handler
    async def deposit(self, msg: Deposit) -> int:
        self.balance += msg.amount
        await self.ref("auditor").send(Audited("deposit", msg.amount))
        return self.balance

    @actorq.handler
    async def withdraw(self, msg: Withdraw) -> int:
        if msg.amount > self.balance:
            raise ValueError(f"{self.owner} has only {self.balance}")
        self.balance -= msg.amount
        return self.balance

    @actorq.handler
    async def get_balance(self, msg: Balance) -> int:
        return self.balance


class Auditor(actorq.Actor):
    def __init__(self, seen: trio.MemorySendChannel[Audited]) -> None:
        self.seen = seen

    @actorq.handler
    async def audited(self, msg: Audited) -> None:
        await self.seen.send(msg)


async def main() -> None:
    send, receive = trio.open_memory_channel[Audited](10)
    async with (
        actorq.open_nats_server() as server,
        actorq.open_actor_supervisor(server.url, strategy="one_for_one", max_restarts=3) as sup,
    ):
        await sup.spawn(Auditor, send, name="auditor")
        account = await sup.spawn(Account, "ada", name="account", process=True, mailbox="durable")
        await account.send(Deposit(100))  # returns once stored; handled at least once
        # Asks travel over core NATS, not through the durable mailbox, so they are not
        # ordered with sends: wait for the auditor to hear of the deposit first.
        print("audit:", (await receive.receive()).amount)
        print("balance after deposit:", await account.ask(Deposit(20)))
        print("audit:", (await receive.receive()).amount)
        try:
            await account.ask(Withdraw(500))
        except actorq.RemoteError as exc:
            print(f"withdraw failed remotely: {exc.exc_type} - {exc.exc_message}")
        print("balance:", await account.ask(Balance(), timeout=5))


if __name__ == "__main__":
    trio.run(main)
