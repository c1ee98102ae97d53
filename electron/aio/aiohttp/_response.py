"""PooledResponse: a response whose body is pooled memory, sent without copying."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.typedefs import LooseHeaders

from ..._buffer import Buffer
from .._request_memory import give_back_body
from ._aiohttp_internals import (
    HEADERS_JOIN_BODY,
    is_uvloop,
    must_be_empty_body,
    send_headers_with_body,
    write_joined,
)
from ._flush import release_after_flush, wait_flushed

if TYPE_CHECKING:
    from aiohttp.web_request import BaseRequest
    from typing_extensions import Buffer as BytesLike

    from ._lease import Lease

__all__ = ("PooledResponse",)

#: Bodies up to this many bytes are copied when the response is made, and their pooled memory
#: goes back at once, before anything is written. Larger bodies go out in the same
#: system call as the headers without a copy where the transport allows it (uvloop; asyncio
#: where aiohttp uses ``writelines``), else after the headers; their memory goes back as soon
#: as the transport holds none of it (see ``_flush``).
COPY_MAX = 16 << 10


class PooledResponse(web.StreamResponse):
    """A response whose body is pooled memory, handed to the transport without a copy.

    ``body`` is a :class:`~electron.Buffer` (its written bytes are sent, and the response
    owns it: it goes back to its pool after sending) or any bytes-like object such as a view
    from ``arena.alloc()``. The memory is given back only once the transport no longer
    references it: after the body was written and the transport's write buffer flushed, or
    the connection was lost. A body of at most :data:`COPY_MAX` bytes is instead copied when
    the response is made, and its memory given back at once: a copy that small costs less
    than waiting for the transport. ``on_release`` is called when the memory is given back.
    Returned from a handler under electron's middleware, the request's arena and buffers go
    back with it.
    """

    # What a response holds until its body goes back; a copied body holds none of them.
    _lease: Lease | None = None  # the request's lease, when the response goes back with it
    _writer: AbstractStreamWriter | None = None
    _sent = False
    _released = False
    _copy: bytes | None = None  # a small body, copied at once (see COPY_MAX)
    _view: memoryview | None = None  # a larger body, sent as it is
    _buffer: Buffer | None = None  # the Buffer behind it
    _own_view = False  # whether _view was made here (a bytes-like body), to release
    _on_release: Callable[[], object] | None = None

    def __init__(
        self,
        body: Buffer | BytesLike,
        *,
        status: int = 200,
        reason: str | None = None,
        headers: LooseHeaders | None = None,
        content_type: str | None = "application/octet-stream",
        charset: str | None = None,
        on_release: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(status=status, reason=reason, headers=headers)
        view: memoryview | None = None
        if isinstance(body, Buffer):
            buf: Buffer | None = body
            length = len(body)
            if length <= COPY_MAX:
                self._copy = body.getvalue()
            else:
                view = body.view()  # released when the buffer goes back
        else:
            buf = None
            view = memoryview(body)
            if view.format != "B" or view.ndim != 1:
                view = view.cast("B")  # raises TypeError for a non-contiguous view
            length = view.nbytes
            if length <= COPY_MAX:
                self._copy = bytes(view)
        # Set as web.Response sets them: the header itself (the property setters parse).
        fields = self.headers
        fields[hdrs.CONTENT_LENGTH] = str(length)
        if content_type is not None:
            if charset is not None:
                content_type = f"{content_type}; charset={charset}"
            fields[hdrs.CONTENT_TYPE] = content_type
        elif charset is not None:
            self.charset = charset
        if self._copy is not None:  # the copy is all the response needs: give it all back
            self._released = True
            give_back_body(view, buf is None, on_release, buf)
        else:
            self._view, self._buffer, self._on_release = view, buf, on_release
            self._own_view = buf is None

    @property
    def released(self) -> bool:
        """True once the body's pooled memory was given back."""
        return self._released

    async def prepare(self, request: BaseRequest) -> AbstractStreamWriter | None:
        """Send the headers (as ``StreamResponse.prepare``) and keep the writer to flush later.

        The headers are held back to go out with the body, unless that would make aiohttp
        copy a large body (``HEADERS_JOIN_BODY`` on a transport other than uvloop's)."""
        if self._writer is None and not self.prepared:
            view = self._view
            joined = (
                not HEADERS_JOIN_BODY
                or view is None
                or is_uvloop(request.transport)
            )
            send_headers_with_body(self, joined)
        writer = await super().prepare(request)
        if writer is not None:
            self._writer = writer
        return writer

    async def write_eof(self, data: bytes = b"") -> None:
        """Send the body and end the response; pooled memory goes back once the transport
        no longer references it (at once for a body of at most ``COPY_MAX`` bytes)."""
        if data:
            raise ValueError("PooledResponse sends its own body; write_eof() takes no data")
        writer = self._writer
        if writer is None or self._sent:
            await super().write_eof()
            return
        self._sent = True
        if self._copy is not None:  # sent with the headers, as web.Response sends bytes
            await super().write_eof(b"" if must_be_empty_body(self) else self._copy)
            return
        lease = self._lease
        try:
            view = self._view
            if view is None:
                raise RuntimeError("this PooledResponse's body was already given back")
            if view.nbytes and not must_be_empty_body(self) and not write_joined(writer, view):
                await self.write(view)
            await super().write_eof()
            if await wait_flushed(writer) and lease is not None:
                lease.owner._flush_waits += 1
        except BaseException:
            # Cancelled or failed mid-way: the transport may still hold the body.
            if lease is not None:
                lease.release_after_flush()
            else:
                release_after_flush(writer, self._release_body)
            raise
        if lease is not None:
            lease.release()
        else:
            self._release_body()

    def _release_body(self) -> None:
        """Give the body back (called once the transport no longer references it)."""
        if self._released:
            return
        self._released = True
        self._lease = None
        view, self._view = self._view, None
        buf, self._buffer = self._buffer, None
        on_release, self._on_release = self._on_release, None
        give_back_body(view, self._own_view, on_release, buf)
