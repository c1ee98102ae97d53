"""electron: request-scoped memory for asyncio servers.

Each request borrows an :class:`Arena` from an :class:`ArenaOfPools`, allocates into it and
into pooled :class:`Buffer` objects, and gives everything back in one step when it ends.
The core is synchronous, thread-safe and needs no third-party package; ``electron.aio``
adds task-scoped arenas for asyncio, uvloop and trio, and ``electron.aio.aiohttp`` a
middleware.
"""

from __future__ import annotations

from ._aop import ArenaOfPools as ArenaOfPools
from ._arena import ALIGNMENT as ALIGNMENT
from ._arena import Arena as Arena
from ._buffer import Buffer as Buffer
from ._errors import ArenaClosed as ArenaClosed
from ._errors import BufferClosed as BufferClosed
from ._errors import DoubleRelease as DoubleRelease
from ._errors import ElectronError as ElectronError
from ._errors import ForeignObject as ForeignObject
from ._errors import InsufficientCapacity as InsufficientCapacity
from ._errors import InvalidArgument as InvalidArgument
from ._errors import PoolClosed as PoolClosed
from ._errors import PoolExhausted as PoolExhausted
from ._errors import ResourceClosed as ResourceClosed
from ._pools import BufferPool as BufferPool
from ._pools import BufferPoolStatistics as BufferPoolStatistics
from ._pools import ObjectPool as ObjectPool
from ._pools import ObjectPoolStatistics as ObjectPoolStatistics
from ._stats import Stats as Stats

__version__ = "0.1.0.dev0"

__all__ = (
    "ALIGNMENT",
    "Arena",
    "ArenaClosed",
    "ArenaOfPools",
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
    "Stats",
)
