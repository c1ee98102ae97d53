"""arena_size="auto": _lend_chunk() counts the overflow chunk in _lent_bytes under the lock and
allocates it afterwards; a MemoryError there escapes alloc() and the count is never undone:
bytes_in_use drifts up for good (and with max_bytes the budget shrinks permanently)."""
import resource
import electron
aop = electron.ArenaOfPools(arena_size="auto", min_arena_size=4096, max_arena_size=1 << 30,
                            max_bytes=2 << 30)
a = aop.get_arena()
vm = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (vm + (64 << 20), resource.RLIM_INFINITY))
try:
    a.alloc(512 << 20)
except MemoryError as e:
    print("alloc raised", type(e).__name__, "(documented: InsufficientCapacity, arena unchanged)")
resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
aop.return_arena(a)
s = aop.statistics()
print("after return: active_arenas", s.active_arenas, "bytes_in_use", s.bytes_in_use, "<- BUG" if s.bytes_in_use else "")
