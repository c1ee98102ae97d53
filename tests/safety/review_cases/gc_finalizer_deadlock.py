"""The cyclic GC can run at any GC-tracked allocation, including those made while the pool's
(non-reentrant) lock is held: _LentArena(...) in _lend_locked, ArenaOfPoolsStatistics/BufferPoolStatistics and a
generator in stats(), exceptions, sorted() in _learn_locked ...  Any finalizer run by that
collection which touches the pool (a __del__ closing a pooled Buffer, a weakref.finalize such as
the aiohttp middleware's lease.release_after_flush, or a leaked arena's objects dropped by
_collect_leaked -> _scrub) blocks forever on the lock its own thread holds.
usage: gc_finalizer_deadlock.py [cycle|arena] [stats|get_arena]"""
import faulthandler, gc, os, sys, threading
import electron

variant = sys.argv[1] if len(sys.argv) > 1 else "cycle"
trigger = sys.argv[2] if len(sys.argv) > 2 else "stats"
aop = electron.ArenaOfPools(arena_size=4096)

class Session:
    def __init__(self):
        self.buf = aop.get_buffer(256)
    def __del__(self):
        self.buf.close()                       # -> BufferPool.put -> shared pool lock

def make_garbage():
    if variant == "cycle":                     # plain cyclic garbage owning a pooled buffer
        s = Session(); s.me = s
    else:                                      # a leaked arena in a cycle; Session only in arena.new
        arena = aop.get_arena()
        arena.new(Session)
        holder = [arena]; holder.append(holder)

def main():
    make_garbage()
    gc.set_threshold(1)                        # deterministic: collect at the next tracked alloc
    if trigger == "stats":
        aop.statistics()                            # e.g. a metrics scrape
    else:
        aop.return_arena(aop.get_arena())
    gc.set_threshold(700)
    print("no deadlock")

t = threading.Thread(target=main, daemon=True); t.start(); t.join(5)
if t.is_alive():
    print(f"DEADLOCK ({variant}, {trigger}): thread stuck for 5 s; its stack:")
    faulthandler.dump_traceback(all_threads=True)
sys.stdout.flush(); sys.stderr.flush()
os._exit(0)
