"""An arena leaked (garbage-collected) while another thread holds the pool's lock is only
queued in aop._leaks; get_arena() never drains that queue before deciding to wait, so a
caller waits (and times out / hangs) although the budget is free."""
import threading, time
import electron

aop = electron.ArenaOfPools(arena_size=4096, max_arenas=1)
leaked = aop.get_arena()

# Another thread is inside the pool (any stats()/get/return) at the moment the leak is collected.
# We stand in for it by holding the lock briefly.
aop._lock.acquire()
t = threading.Thread(target=lambda: None)
del leaked                       # __del__ -> _collect_leaked -> acquire(False) fails -> queued
aop._lock.release()

t0 = time.monotonic()
try:
    a = aop.get_arena(timeout=2)
    print("lent after %.2fs" % (time.monotonic() - t0))
    aop.return_arena(a)
except electron.PoolExhausted:
    print("BUG: PoolExhausted after %.2fs although the only arena was reclaimed" % (time.monotonic() - t0))
print(aop.statistics())   # stats() drains the queue: now it shows active_arenas=0
a = aop.get_arena(timeout=0); print("after stats(): lent at once")
