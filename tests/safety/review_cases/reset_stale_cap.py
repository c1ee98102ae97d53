"""arena_size="auto": Arena.reset() of a quarantined region swaps in a region of the pool's
*current* size (_replace_region) but keeps the arena's old _cap. If the learnt size shrank,
alloc(n) passes the capacity check against the stale _cap and slices past the end of the new
region: it silently returns a view SHORTER than n (or empty); arena.new() fails with ValueError."""
import electron
aop = electron.ArenaOfPools(arena_size="auto", min_arena_size=4096, max_arena_size=1 << 20)
a = aop.get_arena()
print("arena capacity", a.capacity)
for _ in range(512):                     # traffic that uses little memory: the size shrinks
    b = aop.get_arena(); b.alloc(100); aop.return_arena(b)
print("pool now lends", aop.arena_size)
v = a.alloc(16); keep = memoryview(v)   # still exported at reset: region replaced
a.reset()
print("after reset: capacity", a.capacity, "available", a.available)
w = a.alloc(32768)
print("alloc(32768) returned", len(w), "bytes", "<- BUG" if len(w) != 32768 else "")
import ctypes
try:
    a.new(ctypes.c_char * 8192)
except Exception as e:
    print("arena.new:", type(e).__name__, e)
try:
    aop.return_arena(a)
except ValueError as e:
    print("return_arena raised ValueError:", e)
del a, v, w, keep
import gc; gc.collect()
s = aop.statistics()
print("active_arenas", s.active_arenas, "bytes_in_use", s.bytes_in_use, "(nothing is lent any more)")
