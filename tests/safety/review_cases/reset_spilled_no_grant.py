"""arena_size="auto" + max_bytes: Arena.reset() of a grown arena gives its overflow chunks'
bytes back to the budget (_reset_spilled -> _settle_spilled_locked: _lent_bytes -= extra) but
never calls _grant_locked(): a waiter queued for that budget is not woken and times out
although the budget now has room (get_arena(timeout=0) right after succeeds... but FIFO makes
it refuse while the waiter is queued)."""
import threading, time
import electron
S = 64 << 10
aop = electron.ArenaOfPools(arena_size="auto", min_arena_size=S, max_arena_size=1 << 20,
                            max_bytes=3 * S)
a = aop.get_arena()
a.alloc(S); a.alloc(S)                          # grows: first region S + a chunk of >= S
print("lent bytes with a grown arena:", aop.statistics().bytes_in_use, "of", 3 * S)
res = []
def waiter():
    t0 = time.monotonic()
    try:
        b = aop.get_arena(timeout=1.5); res.append("got it after %.2fs" % (time.monotonic() - t0))
        aop.return_arena(b)
    except electron.PoolExhausted:
        res.append("PoolExhausted after %.2fs" % (time.monotonic() - t0))
t = threading.Thread(target=waiter); t.start()
time.sleep(0.2)
a.reset()                                        # the chunk goes back: budget has room now
print("after reset: bytes_in_use", aop.statistics().bytes_in_use, "waiting", aop.statistics().waiting)
t.join()
print("waiter:", res, "<- BUG (budget was free for 1.3 s)" if "Pool" in res[0] else "")
aop.return_arena(a)
