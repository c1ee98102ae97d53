"""The errors of ``electron.asgi``'s helpers, which the middleware answers."""

from __future__ import annotations

__all__ = ("BodyRefused", "ClientDisconnected")


class BodyRefused(Exception):
    """:func:`~electron.asgi.read_body` refused the request body: ``status`` is 413 (over
    the limit or the whole budget) or 408 (it stopped arriving). The middleware answers it
    with that status when the response has not started."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class ClientDisconnected(ConnectionError):
    """The client went away while :func:`~electron.asgi.read_body` read its body. The
    middleware ends the request quietly (counted as cancelled): nobody is left to answer."""
