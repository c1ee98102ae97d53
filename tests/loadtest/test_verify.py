"""Body verifiers: a correct body passes, one wrong byte (or someone else's body) fails."""

from __future__ import annotations

import hashlib
import html
import importlib.util
import json
from pathlib import Path

import pytest

from bench._lt._verify import (
    PatternCache,
    check_bytes,
    check_hello,
    check_json,
    check_render,
    check_upload,
    expected_bytes,
    render_name,
)

SERVER = Path(__file__).resolve().parents[2] / "examples" / "server.py"


@pytest.mark.parametrize(("n", "seed"), [(1, 0), (250, 3), (251, 1), (252, 9), (65536, 7),
                                         (100_000, 2**31 - 1), (1 << 20, 123456789)])
def test_pattern_definition(n: int, seed: int) -> None:
    body = expected_bytes(n, seed)
    assert len(body) == n
    for i in {0, min(1, n - 1), n // 2, n - 1}:
        assert body[i] == (seed * 31 + i) % 251
    assert check_bytes(body, n, seed) is None
    assert check_bytes(bytearray(body), n, seed) is None


@pytest.mark.parametrize("pos", [0, 1, 250, 251, 4095, 65535])
def test_one_flipped_byte_fails_and_says_where(pos: int) -> None:
    body = bytearray(expected_bytes(65536, 11))
    body[pos] ^= 0x01
    reason = check_bytes(bytes(body), 65536, 11)
    assert reason is not None
    assert f"byte {pos} " in reason


def test_wrong_length_and_other_requests_body_fail() -> None:
    good = expected_bytes(4096, 5)
    assert "got 4095 bytes" in (check_bytes(good[:-1], 4096, 5) or "")
    assert check_bytes(good + b"\0", 4096, 5) is not None
    # The body of a request with another seed is not this request's body.
    assert check_bytes(expected_bytes(4096, 6), 4096, 5) is not None
    assert check_bytes(b"", 4096, 5) is not None


def test_pattern_cache_grows_and_stays_correct() -> None:
    cache = PatternCache(10)
    assert bytes(cache.expected(10, 4)) == expected_bytes(10, 4)
    assert bytes(cache.expected(300_000, 4)) == expected_bytes(300_000, 4)
    assert check_bytes(expected_bytes(300_000, 9), 300_000, 9, cache) is None


@pytest.mark.skipif(not SERVER.exists(), reason="examples/server.py not written yet")
def test_verifier_agrees_with_the_example_server_pattern() -> None:
    spec = importlib.util.spec_from_file_location("_example_server", SERVER)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for n, seed in ((1, 0), (1000, 42), (65536, 2**31 - 1)):
        assert check_bytes(mod.pattern(n, seed), n, seed) is None


def _upload_answer(data: bytes) -> bytes:
    return json.dumps({"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}).encode()


def test_upload_check() -> None:
    data = b"\x01\x02" * 5000
    digest = hashlib.sha256(data).hexdigest()
    assert check_upload(_upload_answer(data), len(data), digest) is None
    flipped = bytearray(data)
    flipped[777] ^= 0x80
    assert "sha256" in (check_upload(_upload_answer(bytes(flipped)), len(data), digest) or "")
    assert "size" in (check_upload(_upload_answer(data[:-1]), len(data), digest) or "")
    assert "not JSON" in (check_upload(b"<html>oops", len(data), digest) or "")
    assert check_upload(b"[1, 2]", len(data), digest) is not None


def _page(name: str, items: int, escape: bool = True) -> bytes:
    """A page shaped like the example server's template (autoescaped unless told not to)."""
    n = html.escape(name, quote=False) if escape else name
    lis = "".join(f'<li id="item-{i}">item {i} <em>for {n}</em></li>' for i in range(items))
    return f"<html><h1>Hello, {n}!</h1><ul>{lis}</ul></html>".encode()


def test_render_check() -> None:
    name = render_name(1234)
    assert "<" in name
    assert "&" in name
    assert check_render(_page(name, 10), 1234, 10) is None
    assert check_render(_page(name, 0), 1234, 0) is None
    assert "not escaped" in (check_render(_page(name, 3, escape=False), 1234, 3) or "")
    half = _page(name, 3).replace(b"&lt;b&gt;", b"<b>")  # '&' escaped, '<' '>' not
    assert check_render(half, 1234, 3) is not None
    assert "missing" in (check_render(_page(render_name(999), 3), 1234, 3) or "")
    assert "items" in (check_render(_page(name, 9), 1234, 10) or "")


def test_hello_and_json_checks() -> None:
    assert check_hello(b"Hello, World!") is None
    assert check_hello(b"Hello, World?") is not None
    assert check_hello(b"") is not None
    doc = b'{"message":"Hello, World!"}'
    assert check_json(doc) is None
    assert check_json(doc, reference=doc) is None
    assert check_json(b'{"message":"Hello, Wxrld!"}', reference=doc) is not None
    assert check_json(b"[]") is not None
    assert check_json(b"{truncated") is not None
