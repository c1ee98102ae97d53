"""electron.asgi: request-scoped pooled memory for ASGI applications (Starlette, FastAPI, ...).

:class:`ElectronMiddleware` is pure ASGI and works with any framework and server; in the
application :func:`request_arena`, :func:`request_buffer` and :func:`read_body` give the
request's arena and pooled buffers, lent on first use, all given back in one step once the
response is complete. Pooled response bodies reach the server only in a form it no longer
needs once its ``send`` returns (docs/asgi.md says, server by server, when that is without a
copy). For Starlette and FastAPI: :func:`setup` and :class:`PooledResponse` (they need
Starlette, extra ``asgi``), and the dependencies of :mod:`electron.asgi.fastapi`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._exports import fix_module_names as _fix_module_names
from ..aio._request_memory import MiddlewareStatistics as MiddlewareStatistics
from ..aio._request_memory import RouteUsage as RouteUsage
from ._errors import BodyRefused as BodyRefused
from ._errors import ClientDisconnected as ClientDisconnected
from ._middleware import SCOPE_KEY as SCOPE_KEY
from ._middleware import ElectronMiddleware as ElectronMiddleware
from ._options import MiddlewareOptions as MiddlewareOptions
from ._request import read_body as read_body
from ._request import request_arena as request_arena
from ._request import request_buffer as request_buffer

if TYPE_CHECKING:
    from ._starlette import PooledResponse as PooledResponse
    from ._starlette import setup as setup

__all__ = (
    "SCOPE_KEY",
    "BodyRefused",
    "ClientDisconnected",
    "ElectronMiddleware",
    "MiddlewareOptions",
    "MiddlewareStatistics",
    "PooledResponse",
    "RouteUsage",
    "read_body",
    "request_arena",
    "request_buffer",
    "setup",
)

_STARLETTE = frozenset({"PooledResponse", "setup"})


def __getattr__(name: str) -> Any:
    """``PooledResponse`` and ``setup`` import Starlette: only when first asked for."""
    if name in _STARLETTE:
        from . import _starlette

        value = getattr(_starlette, name)
        _fix_module_names({name: value}, __name__)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_fix_module_names(globals(), __name__)
