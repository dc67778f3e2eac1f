"""``ws_stream._Wakeup``, where a WebSocket app's ``receive`` waits: woken, cancelled, reused,
and a wake with nobody waiting is a no-op (both backends)."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from tricorn.server.ws_stream import _Wakeup

pytestmark = pytest.mark.anyio


async def test_a_waiter_is_woken_and_the_wakeup_is_reusable() -> None:
    wakeup = _Wakeup()
    woken: list[int] = []

    async def waiter(round_: int) -> None:
        await wakeup.wait()
        woken.append(round_)

    for round_ in range(3):
        async with anyio.create_task_group() as group:
            group.start_soon(waiter, round_)
            while not (wakeup._future is not None or wakeup._task is not None):
                await anyio.lowlevel.checkpoint()  # until it is parked
            wakeup.wake()
            wakeup.wake()  # a second wake before it ran changes nothing
    assert woken == [0, 1, 2]


async def test_a_wake_with_nobody_waiting_is_lost() -> None:
    wakeup = _Wakeup()
    wakeup.wake()
    done = False

    async def waiter() -> None:
        nonlocal done
        await wakeup.wait()
        done = True

    async with anyio.create_task_group() as group:
        group.start_soon(waiter)
        for _ in range(20):  # the earlier wake must not let it through
            await anyio.lowlevel.checkpoint()
        assert not done
        wakeup.wake()
    assert done


async def test_a_cancelled_waiter_leaves_it_clean() -> None:
    wakeup = _Wakeup()
    with anyio.move_on_after(0.01) as scope:
        await wakeup.wait()
    assert scope.cancelled_caught
    assert wakeup._future is None and wakeup._task is None
    wakeup.wake()  # nobody waits: no error
    async with anyio.create_task_group() as group:

        async def waiter() -> None:
            await wakeup.wait()

        group.start_soon(waiter)
        while not (wakeup._future is not None or wakeup._task is not None):
            await anyio.lowlevel.checkpoint()
        wakeup.wake()
