import sys, uvloop, electron
sys.path.insert(0, "/tmp/exp/cs2"); sys.path.insert(0, "/work/main")
from bench.micro import Context
from electron._context import current_arena_var as var
from electron._done import DONE
from electron.aio import current_arena
import _cproto2
P = b"response data"
async def main(case, n):
    with electron.ArenaOfPools() as aop:
        _cproto2.setup(var, type(aop)._lend_nowait, type(aop).return_arena, DONE)
        mk = _cproto2.maker(aop)
        gb, rb = aop.get_buffer, aop.return_buffer
        if case == "check":
            async with mk() as arena:
                print(arena, current_arena() is arena, aop.stats().active_arenas)
            print(aop.stats().active_arenas)
            s = mk(); print(s.__aenter__ is s)
        elif case == "cempty":
            for i in range(n):
                async with mk() as arena: pass
        elif case == "cseed":
            for i in range(n):
                async with mk() as arena:
                    ctx = arena.new(Context); ctx.request_id = i
                    buf = gb(1024); buf.write(P); rb(buf); del ctx
uvloop.run(main(sys.argv[1], int(sys.argv[2])))
