"""MemoryError while handing a returned arena to a waiter: _grant_locked() pops the waiter
first, then _lend_locked() fails to allocate. The waiter is gone from the queue but never
woken; when its timeout ends, _finish_wait() does self._waiters.remove(waiter) -> ValueError
(not PoolExhausted), and return_arena() itself raised MemoryError although the arena came back.
Memory pressure is simulated with RLIMIT_AS (pool_size=0 so the returned region is not kept)."""
import resource, threading, time
import electron

SIZE = 256 << 20
aop = electron.ArenaOfPools(arena_size=SIZE, pool_size=0, max_arenas=1, max_bytes=SIZE)
held = aop.get_arena()
held.alloc(16)
# room for the arena that is lent, not for a second one
vm = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (vm + (128 << 20), resource.RLIM_INFINITY))

result = []
def waiter():
    try:
        a = aop.get_arena(timeout=2)
        result.append("got an arena")
    except Exception as e:
        result.append(f"{type(e).__name__}: {e}")
t = threading.Thread(target=waiter); t.start()
time.sleep(0.3)
try:
    aop.return_arena(held)
    print("return_arena ok")
except MemoryError:
    print("return_arena raised MemoryError (the arena was taken back all the same)")
t.join()
print("waiter:", result)
s = aop.statistics()
print("active_arenas", s.active_arenas, "waiting", s.waiting, "wait_timeouts", s.wait_timeouts)
