"""The supervisor's policy without processes: events in, actions out (tricorn/process/policy.py)."""

from __future__ import annotations

import random
import signal

import pytest

from tricorn.process.policy import (
    MAX_START_FAILURES,
    STOP_MARGIN,
    Action,
    Exit,
    Kill,
    Log,
    Notify,
    Policy,
    ReloadFailed,
    Settings,
    Spawn,
    Stop,
)


class Harness:
    """Plays the mechanism: gives spawned workers pids, keeps the actions."""

    def __init__(self, **settings: object) -> None:
        self.policy = Policy(Settings(**settings), rng=random.Random(1))  # type: ignore[arg-type]
        self.now = 0.0
        self.log: list[Action] = []

    def feed(self, actions: list[Action]) -> list[Action]:
        done: list[Action] = []
        for action in actions:
            done.append(action)
            if isinstance(action, Spawn):
                done += self.feed(self.policy.spawned(action.wid, 1000 + action.wid, self.now))
        self.log += done
        return done

    def start(self) -> list[Action]:
        return self.feed(self.policy.start(self.now))

    def boot(self) -> list[int]:
        spawned = spawns(self.start())
        for wid in spawned:
            self.feed(self.policy.ready(wid, self.now))
        return spawned

    def ready(self, wid: int) -> list[Action]:
        return self.feed(self.policy.ready(wid, self.now))

    def exited(self, wid: int, status: int) -> list[Action]:
        return self.feed(self.policy.exited(wid, status, self.now))

    def signal(self, signum: int) -> list[Action]:
        return self.feed(self.policy.signal(signum, self.now))

    def tick(self, now: float) -> list[Action]:
        self.now = now
        return self.feed(self.policy.tick(now))

    def beat(self, wid: int, served: int = 0) -> list[Action]:
        return self.feed(self.policy.heartbeat(wid, served, self.now))

    def reload(self, **settings: object) -> list[Action]:
        new = Settings(**{**_fields(self.policy.settings), **settings})  # type: ignore[arg-type]
        return self.feed(self.policy.reload(new, self.now))

    def live(self) -> list[int]:
        return sorted(w.wid for w in self.policy.workers.values() if not w.stopping)


def _fields(settings: Settings) -> dict[str, object]:
    return {name: getattr(settings, name) for name in Settings.__dataclass_fields__}


def spawns(actions: list[Action]) -> list[int]:
    return [a.wid for a in actions if isinstance(a, Spawn)]


def stops(actions: list[Action]) -> list[int]:
    return [a.wid for a in actions if isinstance(a, Stop)]


def kills(actions: list[Action]) -> list[int]:
    return [a.wid for a in actions if isinstance(a, Kill)]


def exits(actions: list[Action]) -> list[int]:
    return [a.status for a in actions if isinstance(a, Exit)]


@pytest.mark.parametrize("count", [1, 2, 4, 16])
def test_start_spawns_the_workers_and_notifies_ready_once_all_serve(count: int) -> None:
    h = Harness(workers=count)
    wids = spawns(h.start())
    assert len(wids) == count
    for wid in wids[:-1]:
        assert Notify("READY=1") not in h.ready(wid)
    assert Notify("READY=1") in h.ready(wids[-1])


def test_a_worker_that_dies_is_replaced_at_once() -> None:
    h = Harness(workers=2)
    first, _second = h.boot()
    actions = h.exited(first, -signal.SIGKILL)
    assert len(spawns(actions)) == 1
    assert any(isinstance(a, Log) and "SIGKILL" in a.message for a in actions)
    assert exits(actions) == []


def test_a_worker_exiting_before_ready_at_start_ends_the_server_with_its_status() -> None:
    h = Harness(workers=3)
    wids = spawns(h.start())
    actions = h.exited(wids[0], 3)
    assert spawns(actions) == []
    assert sorted(stops(actions)) == wids[1:]
    errors = [a for a in actions if isinstance(a, Log) and a.level == "error"]
    assert len(errors) == 1 and "giving up (exit status 3)" in errors[0].message
    assert exits(h.exited(wids[1], 3)) == []
    assert exits(h.exited(wids[2], 0)) == [3]


def test_repeated_start_failures_after_serving_give_up() -> None:
    h = Harness(workers=1)
    (wid,) = h.boot()
    actions = h.exited(wid, -signal.SIGKILL)
    for _ in range(MAX_START_FAILURES - 1):
        (wid,) = spawns(actions)
        actions = h.exited(wid, 3)
        assert exits(actions) == []
    (wid,) = spawns(actions)
    actions = h.exited(wid, 3)
    assert spawns(actions) == []
    assert exits(actions) == [3]


@pytest.mark.parametrize("count", [1, 2])
def test_reload_waits_for_a_change_after_a_start_failure_instead_of_exiting(count: int) -> None:
    h = Harness(workers=count, reload=True)
    wids = spawns(h.start())
    actions = [action for wid in wids for action in h.exited(wid, 2)]
    assert spawns(actions) == [] and exits(actions) == []
    errors = [a for a in actions if isinstance(a, Log) and a.level == "error"]
    assert len(errors) == 1 and "waiting for a change to try again" in errors[0].message
    assert h.live() == []
    assert spawns(h.tick(100.0)) == []  # nothing is retried until the code changes
    fresh = spawns(h.reload())
    assert len(fresh) == count
    for wid in fresh[:-1]:
        h.ready(wid)
    assert Notify("READY=1") in h.ready(fresh[-1])
    assert exits(h.signal(signal.SIGTERM)) == []
    for wid in fresh[:-1]:
        h.exited(wid, 0)
    assert exits(h.exited(fresh[-1], 0)) == [0]


def test_reload_waiting_for_a_change_stops_at_once_on_sigterm() -> None:
    h = Harness(workers=1, reload=True)
    (wid,) = spawns(h.start())
    h.exited(wid, 2)
    assert exits(h.signal(signal.SIGTERM)) == [0]


def test_a_ready_worker_resets_the_start_failure_count() -> None:
    h = Harness(workers=1)
    (wid,) = h.boot()
    actions = h.exited(wid, 1)
    for _ in range(3 * MAX_START_FAILURES):
        (wid,) = spawns(actions)
        h.ready(wid)
        actions = h.exited(wid, 1)
        assert exits(actions) == []


def test_sigterm_stops_all_gracefully_and_exits_0_when_all_are_gone() -> None:
    h = Harness(workers=2, graceful_timeout=10)
    wids = h.boot()
    actions = h.signal(signal.SIGTERM)
    assert sorted(stops(actions)) == wids
    assert Notify("STOPPING=1") in actions
    actions = h.exited(wids[0], 0)
    assert exits(actions) == [] and spawns(actions) == []
    actions = h.exited(wids[1], 0)
    assert spawns(actions) == [] and exits(actions) == [0]


def test_a_second_sigint_kills_every_worker() -> None:
    h = Harness(workers=2)
    wids = h.boot()
    h.signal(signal.SIGINT)
    actions = h.signal(signal.SIGINT)
    assert sorted(kills(actions)) == wids
    h.exited(wids[0], -signal.SIGKILL)
    assert exits(h.exited(wids[1], -signal.SIGKILL)) == [0]


def test_sigquit_kills_at_once() -> None:
    h = Harness(workers=2)
    wids = h.boot()
    assert sorted(kills(h.signal(signal.SIGQUIT))) == wids


def test_a_worker_that_ignores_the_stop_is_killed_after_the_graceful_timeout() -> None:
    h = Harness(workers=1, graceful_timeout=10)
    (wid,) = h.boot()
    h.signal(signal.SIGTERM)
    assert kills(h.tick(10 + STOP_MARGIN - 0.1)) == []
    assert kills(h.tick(10 + STOP_MARGIN)) == [wid]
    assert kills(h.tick(100)) == []  # once
    assert exits(h.exited(wid, -signal.SIGKILL)) == [0]


def test_ttin_adds_and_ttou_removes_the_oldest_but_never_the_last() -> None:
    h = Harness(workers=2)
    first, second = h.boot()
    (third,) = spawns(h.signal(signal.SIGTTIN))
    h.ready(third)
    assert stops(h.signal(signal.SIGTTOU)) == [first]
    assert stops(h.signal(signal.SIGTTOU)) == [second]
    actions = h.signal(signal.SIGTTOU)
    assert stops(actions) == [] and h.live() == [third]
    # A stopped worker's exit is not replaced.
    assert spawns(h.exited(first, 0)) == []


def test_sighup_rolls_one_worker_at_a_time_new_ready_before_old_stops() -> None:
    h = Harness(workers=3)
    old = h.boot()
    actions = h.reload()
    assert Notify("RELOADING=1") in actions
    (new,) = spawns(actions)
    assert stops(actions) == []
    for index in range(3):
        # Nothing stops while the replacement starts; nothing else spawns.
        ticked = h.tick(h.now + 0.1)
        assert stops(ticked) == [] and spawns(ticked) == []
        actions = h.ready(new)
        assert stops(actions) == [old[index]]
        if index < 2:
            (new,) = spawns(actions)
        else:
            assert spawns(actions) == []
            assert Notify("READY=1") in actions
        h.exited(old[index], 0)
    assert len(h.live()) == 3 and not set(h.live()) & set(old)


def test_sighup_applies_a_new_worker_count() -> None:
    h = Harness(workers=2)
    h.boot()
    actions = h.reload(workers=3)
    assert len(spawns(actions)) == 2  # one more worker, and the first replacement


def test_a_replacement_failing_abandons_the_roll_and_keeps_the_old_workers() -> None:
    h = Harness(workers=2)
    old = h.boot()
    (new,) = spawns(h.reload())
    actions = h.exited(new, 2)
    assert any(isinstance(a, ReloadFailed) for a in actions)
    assert spawns(actions) == [] and stops(actions) == [] and exits(actions) == []
    assert h.live() == old
    assert all(w.retiring is None for w in h.policy.workers.values())


def test_an_old_worker_dying_during_its_replacement_is_not_replaced_twice() -> None:
    h = Harness(workers=2)
    old = h.boot()
    (new,) = spawns(h.reload())
    assert spawns(h.exited(old[0], -signal.SIGKILL)) == []
    (next_new,) = spawns(h.ready(new))
    assert next_new != new
    assert stops(h.ready(next_new)) == [old[1]]


def test_max_requests_with_jitter_recycles_each_worker_at_its_own_count() -> None:
    h = Harness(workers=4, max_requests=100, max_requests_jitter=50)
    h.boot()
    limits = [w.request_limit for w in h.policy.workers.values()]
    assert all(100 <= limit <= 150 for limit in limits)
    assert len(set(limits)) > 1
    wid, limit = next(iter(h.policy.workers.items()))[0], limits[0]
    assert spawns(h.beat(wid, limit - 1)) == []
    (new,) = spawns(h.beat(wid, limit))
    assert stops(h.beat(wid, limit + 5)) == []  # retiring already
    assert stops(h.ready(new)) == [wid]


def test_max_worker_lifetime_recycles() -> None:
    h = Harness(workers=1, max_worker_lifetime=60, worker_timeout=0)
    (wid,) = h.boot()
    assert spawns(h.tick(59)) == []
    (new,) = spawns(h.tick(60))
    assert spawns(h.tick(61)) == []
    assert stops(h.ready(new)) == [wid]


def test_max_worker_memory_recycles_past_the_limit() -> None:
    h = Harness(workers=1, max_worker_memory=100 << 20)
    (wid,) = h.boot()
    assert h.feed(h.policy.memory(wid, 100 << 20, 0)) == []
    (new,) = spawns(h.feed(h.policy.memory(wid, (100 << 20) + 1, 0)))
    assert stops(h.ready(new)) == [wid]


def test_ready_is_notified_at_boot_while_a_memory_replacement_starts() -> None:
    # The first worker is past the limit before the second is ready: its replacement is
    # still starting when the second becomes ready, and two workers serve.
    h = Harness(workers=2, max_worker_memory=100 << 20)
    first, second = spawns(h.start())
    h.ready(first)
    (replacement,) = spawns(h.feed(h.policy.memory(first, (100 << 20) + 1, 0)))
    assert Notify("READY=1") in h.ready(second)
    assert Notify("READY=1") not in h.ready(replacement)  # once, at boot


def test_worker_timeout_kills_a_silent_worker_and_says_how_long() -> None:
    h = Harness(workers=2, worker_timeout=5)
    first, second = h.boot()
    h.now = 4
    h.beat(second)
    actions = h.tick(6)
    assert kills(actions) == [first]
    (kill,) = [a for a in actions if isinstance(a, Kill)]
    assert "no heartbeat for 6.0 s" in kill.reason
    assert len(spawns(actions)) == 1  # its replacement starts at once
    assert spawns(h.exited(first, -signal.SIGKILL)) == []


def test_worker_timeout_zero_and_not_ready_workers_are_never_killed_for_silence() -> None:
    h = Harness(workers=1, worker_timeout=0)
    h.boot()
    assert kills(h.tick(10_000)) == []
    h = Harness(workers=1, worker_timeout=5, startup_timeout=60)
    h.start()  # starting, not ready: the lifespan startup has its own timeout
    assert kills(h.tick(65)) == []


def test_a_worker_never_ready_is_killed_after_startup_timeout_plus_worker_timeout() -> None:
    h = Harness(workers=1, worker_timeout=5, startup_timeout=60)
    (wid,) = spawns(h.start())
    actions = h.tick(65.5)
    assert kills(actions) == [wid]
    assert "not ready after 65.5 s" in next(a for a in actions if isinstance(a, Kill)).reason
    # At start-up (nothing was ever ready) that ends the server.
    assert exits(h.exited(wid, -signal.SIGKILL)) == [1]


def test_signals_during_shutdown_start_nothing() -> None:
    h = Harness(workers=2)
    h.boot()
    h.signal(signal.SIGTERM)
    for signum in (signal.SIGTTIN, signal.SIGTTOU):
        assert h.signal(signum) == []
    assert h.reload() == []
    assert spawns(h.tick(1)) == []


@pytest.mark.parametrize("seed", range(200))
def test_random_event_sequences_keep_the_invariants(seed: int) -> None:
    """Any order of events: at most one surge worker, actions name live workers, and a
    SIGTERM followed by every worker exiting always ends in exactly one Exit."""
    rng = random.Random(seed)
    h = Harness(
        workers=rng.randint(1, 4),
        max_requests=rng.choice([0, 5]),
        max_requests_jitter=2,
        max_worker_lifetime=rng.choice([0, 7]),
        worker_timeout=rng.choice([0, 3]),
        graceful_timeout=2,
    )
    h.boot()
    for _ in range(60):
        wids = list(h.policy.workers)
        choice = rng.randrange(7)
        if not wids or choice == 0:
            actions = h.tick(h.now + rng.random() * 3)
        elif choice == 1:
            actions = h.ready(rng.choice(wids))
        elif choice == 2:
            actions = h.exited(rng.choice(wids), rng.choice([0, 1, 3, -9]))
        elif choice == 3:
            actions = h.beat(rng.choice(wids), rng.randint(0, 10))
        elif choice == 4:
            actions = h.signal(rng.choice([signal.SIGTTIN, signal.SIGTTOU]))
        elif choice == 5:
            actions = h.reload()
        else:
            actions = h.tick(h.now + 0.5)
        for action in actions:
            if isinstance(action, Stop | Kill):
                assert action.wid in h.policy.workers
        if h.policy.mode != "running":
            break  # gave up (start failures)
        starting = [w for w in h.policy.workers.values() if w.surge and not w.ready]
        assert len(starting) <= 1
        counted = [w for w in h.policy.workers.values() if h.policy._counts(w)]
        assert len(counted) == h.policy.target
    h.signal(signal.SIGTERM)
    for wid in list(h.policy.workers):
        h.exited(wid, 0)
    assert len(exits(h.log)) == 1
    assert spawns(h.log[h.log.index(Notify("STOPPING=1")) :]) == []
    assert h.policy.workers == {}
