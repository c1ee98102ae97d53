"""FastAPI dependencies for electron's request memory (needs FastAPI).

::

    from electron.asgi.fastapi import RequestArena, RequestBody

    @app.post("/upload")
    async def upload(body: RequestBody) -> dict[str, int]:
        return {"size": len(body)}      # read into pooled memory, 413 over the limit

Install the middleware with :func:`electron.asgi.setup` (``app.add_middleware`` works too).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .._arena import Arena
from .._buffer import Buffer
from ._request import read_body, request_arena

__all__ = ("RequestArena", "RequestBody", "arena", "body")


def arena(request: Request) -> Arena:
    """The request's arena (lent on first use): :func:`electron.asgi.request_arena`."""
    return request_arena(request)


async def body(request: Request) -> Buffer:
    """The request's body in a pooled buffer: :func:`electron.asgi.read_body`."""
    return await read_body(request)


#: A handler parameter annotated with it receives the request's arena.
RequestArena = Annotated[Arena, Depends(arena)]
#: A handler parameter annotated with it receives the request's body, pooled.
RequestBody = Annotated[Buffer, Depends(body)]
