"""refuse_oversized: a route's ``Expect`` handler that refuses a body before it is sent.

aiohttp answers ``Expect: 100-continue`` with the route's ``expect_handler`` before the route's
handler runs, so only that handler can refuse a body the client has not sent yet. Which body
a route accepts is the route's business (``read_body``'s ``limit``, or ``client_max_size`` for
``request.read()``, or none for a stream), so electron refuses early only on the routes that
ask for it, with the limit they read their body with.
"""

from __future__ import annotations

from aiohttp import web

from ..._checks import check_size
from ._aiohttp_internals import ExpectHandler, continue_expected
from ._middleware import _SERVED_BY, MIDDLEWARE_KEY, Middleware

__all__ = ("refuse_oversized",)


def refuse_oversized(limit: int | None = None) -> ExpectHandler:
    """An ``expect_handler`` for a route that reads its body with ``read_body(limit=limit)``.

    ``Expect: 100-continue`` with a declared ``Content-Length`` over ``limit`` (default: the
    middleware's ``body_limit``) or over the pool's whole ``max_bytes`` is answered ``413``
    before the client sends the body (the connection then closes); any other request as
    aiohttp answers it, ``100 Continue``. Refusals count as ``too_large``::

        web.post("/upload", upload, expect_handler=electron_aiohttp.refuse_oversized())

    On a route no electron middleware serves, or an excluded path, it refuses nothing.
    """
    if limit is not None:
        check_size(limit, "limit")

    async def expect(request: web.Request) -> web.StreamResponse | None:
        length = request.content_length
        owner = _owner(request)
        if length is not None and owner is not None and request.path not in owner.exclude:
            most = owner._refuses_length(length, limit)
            if most is not None:
                refusal = web.HTTPRequestEntityTooLarge(max_size=most, actual_size=length)
                refusal.force_close()  # the body will not come: no lingering read
                raise refusal
        await continue_expected(request)
        return None

    return expect


def _owner(request: web.Request) -> Middleware | None:
    """The electron middleware that will serve ``request``'s handler: the outermost one
    installed as a middleware on its apps' path, else the one that wrapped its route."""
    match_info = request.match_info
    for app in match_info.apps:
        mw = app.get(MIDDLEWARE_KEY)
        if mw is not None and mw in app.middlewares:
            return mw
    served: Middleware | None = getattr(match_info.handler, _SERVED_BY, None)
    return served
