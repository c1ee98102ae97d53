"""ArenaOfPools across threads: FIFO waiting, wake-ups, timeouts, close, scopes, budgets."""

from __future__ import annotations

import threading

from electron import Arena, ArenaOfPools, DoubleRelease, PoolClosed, PoolExhausted
from electron.aio import current_arena
from tests.support import JOIN, wait_until

SIZE = 4096


class Getter(threading.Thread):
    """A thread that takes one arena, records it, and gives it back when told to."""

    def __init__(
        self, aop: ArenaOfPools, name: str, order: list[str], timeout: float | None = None
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.aop = aop
        self.order = order
        self.timeout = timeout
        self.arena: Arena | None = None
        self.error: BaseException | None = None
        self.release = threading.Event()

    def run(self) -> None:
        try:
            self.arena = self.aop.get_arena(timeout=self.timeout)
        except BaseException as exc:
            self.error = exc
            return
        self.order.append(self.name)
        self.release.wait(JOIN)
        self.aop.return_arena(self.arena)


def test_waiters_are_served_first_come_first_served() -> None:
    with ArenaOfPools(arena_size=SIZE, max_arenas=1) as aop:
        held = aop.get_arena()
        order: list[str] = []
        getters = []
        for i in range(4):
            g = Getter(aop, f"w{i}", order)
            g.start()
            getters.append(g)
            wait_until(lambda n=i + 1: aop.statistics().waiting == n, f"{i + 1} waiters")  # type: ignore[misc]
        aop.return_arena(held)
        for i, g in enumerate(getters):
            wait_until(lambda n=i + 1: len(order) == n, f"waiter {i} served")  # type: ignore[misc]
            assert order == [f"w{k}" for k in range(i + 1)]
            assert aop.statistics().active_arenas == 1
            g.release.set()
            g.join(JOIN)
            assert g.error is None
        s = aop.statistics()
        assert (s.active_arenas, s.waiting) == (0, 0)
        assert s.waits == 4
        assert s.wait_timeouts == 0


def test_waiter_is_woken_by_a_return_from_another_thread() -> None:
    with ArenaOfPools(arena_size=SIZE, max_arenas=2) as aop:
        a, b = aop.get_arena(), aop.get_arena()
        order: list[str] = []
        g = Getter(aop, "waiter", order)
        g.start()
        wait_until(lambda: aop.statistics().waiting == 1, "the waiter to queue")
        returner = threading.Thread(target=aop.return_arena, args=(b,))
        returner.start()
        returner.join(JOIN)
        wait_until(lambda: order == ["waiter"], "the waiter to be served")
        assert g.arena is not None
        assert g.arena is not b
        assert g.arena.used == 0
        g.release.set()
        g.join(JOIN)
        aop.return_arena(a)
        assert aop.statistics().active_arenas == 0


def test_timed_out_waiter_leaves_the_queue_and_others_still_get_served() -> None:
    with ArenaOfPools(arena_size=SIZE, max_arenas=1) as aop:
        held = aop.get_arena()
        order: list[str] = []
        quitter = Getter(aop, "quitter", order, timeout=0.05)
        quitter.start()
        quitter.join(JOIN)
        assert isinstance(quitter.error, PoolExhausted)
        assert isinstance(quitter.error, TimeoutError)
        assert aop.statistics().waiting == 0
        patient = Getter(aop, "patient", order)
        patient.start()
        wait_until(lambda: aop.statistics().waiting == 1, "the patient waiter")
        aop.return_arena(held)
        wait_until(lambda: order == ["patient"], "the patient waiter to be served")
        patient.release.set()
        patient.join(JOIN)
        s = aop.statistics()
        assert (s.active_arenas, s.waiting, s.wait_timeouts) == (0, 0, 1)


def test_close_fails_every_waiter_with_pool_closed() -> None:
    aop = ArenaOfPools(arena_size=SIZE, max_arenas=1)
    held = aop.get_arena()
    order: list[str] = []
    getters = [Getter(aop, f"w{i}", order) for i in range(3)]
    for g in getters:
        g.start()
    wait_until(lambda: aop.statistics().waiting == 3, "three waiters")
    aop.close()
    for g in getters:
        g.join(JOIN)
        assert not g.is_alive()
        assert isinstance(g.error, PoolClosed)
    assert order == []
    aop.return_arena(held)
    assert aop.statistics().active_arenas == 0


def test_budget_is_never_exceeded_under_contention() -> None:
    limit = 3
    with ArenaOfPools(arena_size=SIZE, max_arenas=limit) as aop:
        lock = threading.Lock()
        live = 0
        peak = 0
        errors: list[BaseException] = []
        start = threading.Barrier(8)

        def worker() -> None:
            nonlocal live, peak
            start.wait()
            try:
                for _ in range(200):
                    arena = aop.get_arena(timeout=JOIN)
                    with lock:
                        live += 1
                        peak = max(peak, live)
                    arena.alloc(64)[:] = b"\x01" * 64
                    with lock:
                        live -= 1
                    aop.return_arena(arena)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(JOIN * 3)
        assert errors == []
        assert 1 <= peak <= limit
        s = aop.statistics()
        assert (s.active_arenas, s.waiting) == (0, 0)
        assert s.arenas_created <= limit


def test_arena_scope_on_threads_sets_the_current_arena() -> None:
    with ArenaOfPools(arena_size=SIZE, max_arenas=4) as aop:
        seen: dict[int, tuple[bool, bool, bool]] = {}
        errors: list[BaseException] = []
        inside = threading.Barrier(4)

        def worker(i: int) -> None:
            try:
                try:
                    current_arena()
                    outside_before = False
                except LookupError:
                    outside_before = True
                with aop.arena(timeout=JOIN) as arena:
                    inside.wait(JOIN)  # every thread is inside its own scope at once
                    mine = current_arena() is arena
                    arena.alloc(16)[:] = bytes([i]) * 16
                    inside.wait(JOIN)
                try:
                    current_arena()
                    outside_after = False
                except LookupError:
                    outside_after = True
                seen[i] = (outside_before, mine, outside_after)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(JOIN)
        assert errors == []
        assert seen == dict.fromkeys(range(4), (True, True, True))
        assert aop.statistics().active_arenas == 0


def test_scopes_on_threads_get_distinct_arenas() -> None:
    with ArenaOfPools(arena_size=SIZE) as aop:
        arenas: list[Arena] = []
        lock = threading.Lock()
        inside = threading.Barrier(4)

        def worker() -> None:
            with aop.arena() as arena:
                assert current_arena() is arena
                with lock:
                    arenas.append(arena)
                inside.wait(JOIN)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(JOIN)
        assert len(arenas) == 4
        assert len({id(a) for a in arenas}) == 4
        assert all(a.closed for a in arenas)


def _race_returns(aop: ArenaOfPools, arena: Arena, racers: int) -> list[str]:
    barrier = threading.Barrier(racers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def give_back() -> None:
        barrier.wait()
        try:
            aop.return_arena(arena)
            result = "ok"
        except DoubleRelease:
            result = "double"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=give_back) for _ in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN)
    return sorted(outcomes)


def test_an_arena_returned_from_many_threads_is_counted_once() -> None:
    """Racing returns of one arena: exactly one wins, the others get DoubleRelease."""
    for _ in range(50):
        with ArenaOfPools(arena_size=4096) as aop:
            arena = aop.get_arena()
            arena.alloc(64)
            assert _race_returns(aop, arena, 4) == ["double", "double", "double", "ok"]
            assert aop.statistics().active_arenas == 0
            assert aop.statistics().pooled_arenas == 1
