"""Body verifiers: every response is checked, and a wrong byte is an error, not a success.

Each check returns ``None`` for a correct body or a short reason naming what was wrong (for
``/bytes`` the first wrong offset), which the load test counts as a ``bad_body`` error and
keeps as a sample. Requests carry a per-request token (the ``seed``, the upload's content,
the page's ``name``), so a body meant for another request fails the check too.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = (
    "PatternCache",
    "check_bytes",
    "check_hello",
    "check_json",
    "check_render",
    "check_upload",
    "expected_bytes",
    "render_name",
    "sha256_hex",
)

HELLO = b"Hello, World!"
_PERIOD = 251


def expected_bytes(n: int, seed: int) -> bytes:
    """The body ``GET /bytes/{n}?seed={seed}`` must return: byte i is ``(seed*31 + i) % 251``."""
    off = (seed * 31) % _PERIOD
    return bytes((off + i) % _PERIOD for i in range(n))


class PatternCache:
    """One long copy of the 251-byte cycle, so a check is a memcmp with no per-request copy."""

    __slots__ = ("_base", "_view")

    def __init__(self, n: int = 0) -> None:
        self._base = b""
        self._view = memoryview(self._base)
        self._grow(n)

    def _grow(self, n: int) -> None:
        reps = (n + _PERIOD) // _PERIOD + 1
        self._base = bytes(range(_PERIOD)) * reps
        self._view = memoryview(self._base)

    def expected(self, n: int, seed: int) -> memoryview:
        """A read-only view of the expected body (valid until the cache grows)."""
        if len(self._base) < n + _PERIOD:
            self._grow(n)
        off = (seed * 31) % _PERIOD
        return self._view[off : off + n]


_DEFAULT_CACHE = PatternCache()


def check_bytes(
    body: bytes | bytearray, n: int, seed: int, cache: PatternCache | None = None
) -> str | None:
    """``None`` when ``body`` is exactly the pattern for ``(n, seed)``, else where it differs."""
    want = (cache or _DEFAULT_CACHE).expected(n, seed)
    if len(body) == n and body.startswith(want):
        return None
    if len(body) != n:
        return f"/bytes/{n}?seed={seed}: got {len(body)} bytes, want {n}"
    for i in range(n):  # only on failure: find the first wrong offset for the report
        if body[i] != want[i]:
            return (
                f"/bytes/{n}?seed={seed}: byte {i} is 0x{body[i]:02x}, want 0x{want[i]:02x}"
            )
    return f"/bytes/{n}?seed={seed}: body differs"  # pragma: no cover - startswith disagreed


def check_hello(body: bytes) -> str | None:
    """``GET /`` must answer exactly ``Hello, World!``."""
    return None if body == HELLO else f"/: got {body[:40]!r}, want {HELLO!r}"


def _load(body: bytes, route: str) -> tuple[Any, str | None]:
    try:
        return json.loads(body), None
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"{route}: not JSON ({exc}): {body[:40]!r}"


def check_json(body: bytes, reference: bytes | None = None) -> str | None:
    """``GET /json`` must be a JSON object; equal to ``reference`` when one was recorded."""
    doc, err = _load(body, "/json")
    if err:
        return err
    if not isinstance(doc, dict):
        return f"/json: got a {type(doc).__name__}, want an object"
    if reference is not None and body != reference:
        return f"/json: body differs from the reference document: {body[:60]!r}"
    return None


def check_upload(body: bytes, size: int, sha256_hex: str) -> str | None:
    """``POST /upload`` must echo the size and SHA-256 of exactly the bytes that were sent."""
    doc, err = _load(body, "/upload")
    if err:
        return err
    if not isinstance(doc, dict):
        return f"/upload: got a {type(doc).__name__}, want an object"
    if doc.get("size") != size:
        return f"/upload: size {doc.get('size')!r}, want {size}"
    if doc.get("sha256") != sha256_hex:
        return f"/upload: sha256 {str(doc.get('sha256'))[:16]}..., want {sha256_hex[:16]}..."
    return None


def render_name(token: int) -> str:
    """The ``name`` sent to ``/render``: unique per request, with characters HTML must escape."""
    return f"<b>&{token}"


def check_render(body: bytes, token: int, items: int) -> str | None:
    """``GET /render`` must greet this request's name, escaped, and list ``items`` items."""
    raw = render_name(token).encode()
    escaped = raw.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")
    if raw in body:
        return f"/render: name {raw!r} is not escaped"
    if escaped not in body:
        return f"/render: this request's name {escaped!r} is missing (another request's page?)"
    got = body.count(b"<li")
    if got != items:
        return f"/render: {got} <li> items, want {items}"
    return None


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (what ``/upload`` must echo)."""
    return hashlib.sha256(data).hexdigest()
