"""MemoryError in Arena.reset() when the region must be replaced (something still exports it):
_replace_region() has already parked the old region and uncounted its bytes, then
bytearray(arena_size) fails. The arena is left closed (_mv None) but still counted as lent:
return_arena() raises DoubleRelease, __del__ reclaims nothing, and with max_arenas=1 the pool
never lends again; bytes_in_use says 0 while active_arenas says 1."""
import resource, gc
import electron

SIZE = 256 << 20
aop = electron.ArenaOfPools(arena_size=SIZE, pool_size=0, max_arenas=1)
a = aop.get_arena()
v = a.alloc(16)
keep = memoryview(v)                     # a derived view: the region must be quarantined on reset
vm = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (vm + (128 << 20), resource.RLIM_INFINITY))
try:
    a.reset()
except MemoryError:
    print("reset() raised MemoryError; arena.closed =", a.closed)
resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
try:
    aop.return_arena(a)
except electron.DoubleRelease as e:
    print("return_arena ->", type(e).__name__)
del a, v, keep; gc.collect()
s = aop.statistics()
print("active_arenas", s.active_arenas, "bytes_in_use", s.bytes_in_use, "quarantined", s.quarantined)
try:
    aop.get_arena(timeout=0.5); print("lent")
except electron.PoolExhausted:
    print("BUG: PoolExhausted forever (the only arena slot is gone)")
