"""The route mix: which requests the load test sends, and in what proportion."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ("DEFAULT_MIX", "ROUTE_HELP", "Route", "parse_mix")

DEFAULT_MIX = "/=40,/json=20,/bytes/262144=20,/render=10,/upload=10"

ROUTE_HELP = (
    "/ (Hello, World!), /json, /bytes/N (N pattern bytes, N <= 8 MiB), "
    "/render (HTML page; /render?items=N for N list items), /upload (POST of --upload-size bytes)"
)

_MAX_BYTES = 8 << 20
_BYTES = re.compile(r"^/bytes/(\d+)$")
_RENDER = re.compile(r"^/render(?:\?items=(\d+))?$")


@dataclass(frozen=True, slots=True)
class Route:
    """One entry of the mix: ``kind`` picks the request builder and the body verifier.

    ``size`` is the body length for ``bytes`` and ``upload``, the item count for ``render``.
    """

    name: str
    kind: str  # "hello" | "json" | "bytes" | "render" | "upload"
    weight: float
    size: int = 0

    @property
    def method(self) -> str:
        return "POST" if self.kind == "upload" else "GET"


def _route(path: str, weight: float, upload_size: int) -> Route:
    if path == "/":
        return Route(path, "hello", weight)
    if path == "/json":
        return Route(path, "json", weight)
    if path == "/upload":
        return Route(path, "upload", weight, upload_size)
    if m := _BYTES.match(path):
        n = int(m.group(1))
        if not 0 < n <= _MAX_BYTES:
            raise ValueError(f"{path}: N must be 1 .. {_MAX_BYTES} (the server's limit)")
        return Route(path, "bytes", weight, n)
    if m := _RENDER.match(path):
        return Route(path, "render", weight, int(m.group(1) or 10))
    raise ValueError(f"unknown route {path!r}; known: {ROUTE_HELP}")


def parse_mix(spec: str, upload_size: int = 16384) -> tuple[Route, ...]:
    """Parse ``"/=50,/json=20,/bytes/65536=20"`` (path=weight, weights need not sum to 100).

    Raises ``ValueError`` with the reason for an unknown route, a bad weight or an empty mix.
    """
    routes: list[Route] = []
    seen: set[str] = set()
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        path, sep, w = item.rpartition("=")
        if not sep or not path:
            raise ValueError(f"mix entry {item!r} is not PATH=WEIGHT")
        try:
            weight = float(w)
        except ValueError:
            raise ValueError(f"mix entry {item!r}: weight {w!r} is not a number") from None
        if weight < 0:
            raise ValueError(f"mix entry {item!r}: weight must be >= 0")
        if path in seen:
            raise ValueError(f"mix entry {item!r}: route listed twice")
        seen.add(path)
        if weight > 0:
            routes.append(_route(path.strip(), weight, upload_size))
    if not routes:
        raise ValueError(f"mix {spec!r} has no route with a positive weight")
    return tuple(routes)
