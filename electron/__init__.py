"""electron: request-scoped memory for asyncio servers.

Each request borrows an :class:`Arena` from an :class:`ArenaOfPools`, allocates into it and
into pooled :class:`Buffer` objects, and gives everything back in one step when it ends.
The core is synchronous, thread-safe and needs no third-party package; ``electron.aio``
adds task-scoped arenas for asyncio, uvloop and trio, and ``electron.aio.aiohttp`` a
middleware.
"""

from __future__ import annotations

from pathlib import Path as _Path

from ._loader import select_core as _select_core

#: True when the core runs compiled (mypyc); False for pure Python (same code, same tests).
COMPILED: bool = _select_core(__name__, _Path(__file__).parent)

from ._arena import ALIGNMENT as ALIGNMENT  # noqa: E402
from ._arena import Arena as Arena  # noqa: E402
from ._arena_of_pools import ArenaOfPools as ArenaOfPools  # noqa: E402
from ._arena_of_pools import ArenaOfPoolsStatistics as ArenaOfPoolsStatistics  # noqa: E402
from ._buffer import Buffer as Buffer  # noqa: E402
from ._buffer_pool import BufferPool as BufferPool  # noqa: E402
from ._buffer_pool import BufferPoolStatistics as BufferPoolStatistics  # noqa: E402
from ._errors import ArenaClosed as ArenaClosed  # noqa: E402
from ._errors import BufferClosed as BufferClosed  # noqa: E402
from ._errors import DoubleRelease as DoubleRelease  # noqa: E402
from ._errors import ElectronError as ElectronError  # noqa: E402
from ._errors import ForeignObject as ForeignObject  # noqa: E402
from ._errors import InsufficientCapacity as InsufficientCapacity  # noqa: E402
from ._errors import InvalidArgument as InvalidArgument  # noqa: E402
from ._errors import PoolClosed as PoolClosed  # noqa: E402
from ._errors import PoolExhausted as PoolExhausted  # noqa: E402
from ._errors import ResourceClosed as ResourceClosed  # noqa: E402
from ._object_pool import ObjectPool as ObjectPool  # noqa: E402
from ._object_pool import ObjectPoolStatistics as ObjectPoolStatistics  # noqa: E402

__version__ = "0.1.0.dev0"

__all__ = (
    "ALIGNMENT",
    "COMPILED",
    "Arena",
    "ArenaClosed",
    "ArenaOfPools",
    "ArenaOfPoolsStatistics",
    "Buffer",
    "BufferClosed",
    "BufferPool",
    "BufferPoolStatistics",
    "DoubleRelease",
    "ElectronError",
    "ForeignObject",
    "InsufficientCapacity",
    "InvalidArgument",
    "ObjectPool",
    "ObjectPoolStatistics",
    "PoolClosed",
    "PoolExhausted",
    "ResourceClosed",
)

from ._exports import fix_module_names as _fix_module_names  # noqa: E402

_fix_module_names(globals(), __name__)
