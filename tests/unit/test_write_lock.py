"""``WriteLock``: one writer at a time, in arrival order, and cancellation-safe (both backends)."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from tricorn.server.state import WriteLock

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("yield_after_acquire", [False, True])
async def test_writers_take_turns_in_arrival_order(yield_after_acquire: bool) -> None:
    lock = WriteLock(yield_after_acquire=yield_after_acquire)
    order: list[str] = []
    inside = 0

    async def writer(name: str) -> None:
        nonlocal inside
        async with lock:
            inside += 1
            assert inside == 1, "two writers inside the lock"
            order.append(name)
            await anyio.sleep(0.01)  # a write that has to wait
            inside -= 1

    async with anyio.create_task_group() as group:
        for name in "abcde":
            group.start_soon(writer, name)
            await anyio.sleep(0.001)  # arrive in this order
    assert order == list("abcde")
    assert not lock.locked


async def test_an_uncontended_acquire_does_not_yield() -> None:
    lock = WriteLock()
    ran_meanwhile = False

    async def other() -> None:
        nonlocal ran_meanwhile
        ran_meanwhile = True

    async with anyio.create_task_group() as group:
        group.start_soon(other)
        async with lock:
            assert not ran_meanwhile  # no trip through the event loop on the way in
        await anyio.lowlevel.checkpoint()
    assert ran_meanwhile


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    lock = WriteLock()
    order: list[str] = []

    async def writer(name: str) -> None:
        async with lock:
            order.append(name)

    async with lock, anyio.create_task_group() as group:
        with anyio.CancelScope() as doomed:
            group.start_soon(writer, "never")  # queued behind us, then cancelled
            await anyio.sleep(0.01)
        doomed.cancel()
        group.cancel_scope.cancel()
    async with anyio.create_task_group() as group:
        group.start_soon(writer, "next")
    assert order == ["next"]
    assert not lock.locked


async def test_a_waiter_cancelled_as_it_is_handed_the_lock_does_not_strand_it() -> None:
    lock = WriteLock()
    order: list[str] = []
    handed = anyio.Event()

    async def first_waiter(scope: anyio.CancelScope) -> None:
        with scope:
            async with lock:
                order.append("first")
                await anyio.sleep(1)  # the cancellation lands here at the latest

    async def second_waiter() -> None:
        async with lock:
            order.append("second")
            handed.set()

    scope = anyio.CancelScope()
    async with anyio.create_task_group() as group:
        async with lock:
            group.start_soon(first_waiter, scope)
            await anyio.sleep(0.01)
            group.start_soon(second_waiter)
            await anyio.sleep(0.01)
        # Released: the first waiter was handed the lock; cancel it before it runs. Whether
        # the backend lets it in first or not, the second waiter must get the lock next.
        scope.cancel()
        with anyio.fail_after(5):
            await handed.wait()
    assert order[-1] == "second"
    assert order in (["second"], ["first", "second"])
    assert not lock.locked


@pytest.mark.parametrize("yield_after_acquire", [False, True])
async def test_the_lock_goes_in_the_order_it_was_asked_for(yield_after_acquire: bool) -> None:
    """Writers take their bytes from the protocol just before asking for the lock: if a later
    asker could overtake an earlier one (trio runs a batch of ready tasks in random order),
    bytes would go out of order on the wire."""
    lock = WriteLock(yield_after_acquire=yield_after_acquire)
    asked: list[int] = []
    got: list[int] = []

    async def writer(index: int) -> None:
        await anyio.lowlevel.checkpoint()  # all become ready in one batch
        asked.append(index)
        async with lock:
            got.append(index)
            await anyio.lowlevel.checkpoint()

    for _ in range(50):
        async with anyio.create_task_group() as group:
            for index in range(6):
                group.start_soon(writer, index)
    assert got == asked
