"""Same bug with real threads only: one thread polls aop.statistics() (a metrics scraper), the
request thread drops an arena without returning it. When the drop lands while the scraper
holds the lock, the reclaimed arena sits in the queue and the next get_arena() waits in vain."""
import sys, threading, time
import electron
sys.setswitchinterval(1e-6)
aop = electron.ArenaOfPools(arena_size=4096, max_arenas=1)
stop = False
def scraper():
    while not stop:
        aop.statistics()
th = threading.Thread(target=scraper); th.start()
hit = 0
for i in range(20000):
    a = aop.get_arena(timeout=None if i == 0 else 5)
    del a                                   # leaked: reclaimed by __del__
    if aop._leaks:                          # landed while the scraper held the lock
        hit += 1
        stop = True; th.join()
        if aop._leaks:
            break
        stop = False; th = threading.Thread(target=scraper); th.start()
stop = True; th.join()
print("iterations:", i, "queued leaks left:", len(aop._leaks))
t0 = time.monotonic()
try:
    aop.get_arena(timeout=1)
    print("lent")
except electron.PoolExhausted:
    print("BUG: PoolExhausted after %.1fs; stats() would show active_arenas=0" % (time.monotonic() - t0))
