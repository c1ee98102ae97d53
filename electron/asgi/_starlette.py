"""Starlette and FastAPI conveniences: :func:`setup` and :class:`PooledResponse`.

Needs Starlette (extra ``asgi``); the middleware itself does not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Unpack

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.responses import Response

from .._buffer import Buffer
from ..aio._request_memory import give_back_body
from ._middleware import SCOPE_KEY, ASGIApp, ElectronMiddleware, Receive, Scope, Send
from ._options import MiddlewareOptions
from ._servers import safe_body, server_of

if TYPE_CHECKING:
    from typing_extensions import Buffer as BytesLike

    from .._arena_of_pools import ArenaOfPools

__all__ = ("PooledResponse", "setup")


def setup(
    app: Starlette, aop: ArenaOfPools, **options: Unpack[MiddlewareOptions]
) -> ElectronMiddleware:
    """Install :class:`ElectronMiddleware` as ``app``'s outermost user middleware and
    return it (for its statistics). Options as for the middleware.

    There, inside Starlette's own error middleware, the 503, 413, 408 and 500 it answers
    reach the client instead of Starlette's generic 500. Call it before the app serves.
    """
    mw = ElectronMiddleware(_unbound, aop=aop, **options)

    def bind(inner: ASGIApp) -> ElectronMiddleware:
        mw.app = inner
        return mw

    app.add_middleware(bind)
    return mw


async def _unbound(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("electron.asgi.setup: the middleware was not bound to the app yet")


class PooledResponse(Response):
    """A Starlette response whose body is pooled memory.

    ``body`` is a :class:`~electron.Buffer` (its written bytes are sent, and the response
    owns it: it goes back to its pool once sent) or any bytes-like view, such as
    ``arena.alloc(n)``. It is handed to the server as it is where the server copies it
    before its ``send`` returns, else as a ``bytes`` copy (electron's middleware decides,
    or the response itself without it), so the memory goes back as soon as the body was
    sent; ``on_release()`` is called then, and :attr:`released` says whether it was.
    """

    media_type = "application/octet-stream"

    def __init__(
        self,
        body: Buffer | BytesLike,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
        *,
        on_release: Callable[[], object] | None = None,
    ) -> None:
        self._buffer: Buffer | None = None
        if isinstance(body, Buffer):
            self._buffer = body
            view = body.view()  # released when the buffer goes back
        else:
            view = memoryview(body)
            if view.format != "B" or view.ndim != 1:
                view = view.cast("B")  # TypeError for a non-contiguous view
        self._view: memoryview | None = view
        self._on_release = on_release
        self._released = False
        super().__init__(view, status_code, headers, media_type, background)

    def render(self, content: Any) -> bytes | memoryview:
        """The body is the view itself (no copy)."""
        return content  # type: ignore[no-any-return]

    @property
    def released(self) -> bool:
        """True once the body's pooled memory was given back."""
        return self._released

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        view = self._view
        if view is None:
            raise RuntimeError("this PooledResponse was sent already: its memory went back")
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            # Under electron's middleware its send makes the body safe; without it, here.
            body = view if SCOPE_KEY in scope else safe_body(view, server_of(send), False)
            await send({"type": "http.response.body", "body": body})
        finally:
            self.body = b""
            self._release_body()
        if self.background is not None:
            await self.background()

    def _release_body(self) -> None:
        """Give the body back (the server no longer references it)."""
        if self._released:
            return
        self._released = True
        view, self._view = self._view, None
        buf, self._buffer = self._buffer, None
        on_release, self._on_release = self._on_release, None
        give_back_body(view, buf is None, on_release, buf)
