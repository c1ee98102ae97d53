"""Benchmarks of Buffer's text utilities, each against the obvious standard-library way.

    python -m bench.text [--quick] [--json FILE] [--repeat N]

For every utility the same run times, on the same input: the standard-library expression
(``buf.getvalue().find(...)``, ``html.escape(s).encode()``, ``json.dumps(s).encode()``,
``str(n).encode()`` ...: the baseline), for the writers the same expression written into a
buffer (``+ write``: the work the utility actually replaces), and the electron method.
``ratio`` is baseline time / electron time (> 1: electron is faster); ``vs +write`` (JSON:
``extra.vs_write``) is the ratio against the ``+ write`` row. The variants of a case run in
interleaved rounds and each keeps its fastest round, so a burst of load elsewhere on the
machine hits them alike. Before timing, each case checks that electron and the standard
library give the same result.

The core may run compiled (mypyc) or as pure Python (``ELECTRON_PURE_PYTHON=1``); the
title says which.
"""

from __future__ import annotations

import argparse
import gc
import html
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import electron

from ._harness import Result, add_common_args, write_json

__all__ = ("Case", "all_cases", "main", "run")

Loop = Callable[[int], object]


@dataclass
class Case:
    """One input, timed as the stdlib expression, the stdlib + write, and electron."""

    group: str
    label: str
    stdlib: str  # how the baseline is spelled, for the table
    base: Loop
    base_write: Loop | None
    ours: Loop
    check: Callable[[], tuple[object, object]]  # (electron's result, stdlib's result)


def _filled(data: bytes) -> electron.Buffer:
    buf = electron.Buffer(len(data))
    buf.write(data)
    return buf


def _text_64k() -> bytes:
    """64 KiB of short comma-separated lines of words."""
    words = [b"lorem", b"ipsum", b"dolor", b"sit", b"amet", b"consectetur", b"elit", b"sed"]
    lines: list[bytes] = []
    size = 0
    while size < 64 << 10:
        i = len(lines)
        line = b" ".join(words[(i + k) % len(words)] for k in range(9)) + b",%d\n" % i
        lines.append(line)
        size += len(line)
    return b"".join(lines)[: 64 << 10]


def _long_lines(text: bytes) -> bytes:
    """``text`` with its line ends and commas turned into spaces, then a LF every 4 KiB."""
    flat = text.replace(b"\n", b" ").replace(b",", b" ")
    return b"".join(flat[i : i + 4095] + b"\n" for i in range(0, len(flat), 4096))


def _with_markers(data: bytes, k: int) -> bytes:
    """``data`` with ``<%>`` inserted ``k`` times, evenly spread."""
    step = len(data) // k
    return b"".join(data[i * step : (i + 1) * step] + b"<%>" for i in range(k))


# -- searching ------------------------------------------------------------------------------


def _search_case(label: str, buf: electron.Buffer, method: str, arg: bytes) -> Case:
    ours_fn = getattr(buf, method)

    def ours(n: int) -> None:
        for _ in range(n):
            ours_fn(arg)

    def base(n: int) -> None:
        getvalue = buf.getvalue
        for _ in range(n):
            getattr(getvalue(), method)(arg)

    def check() -> tuple[object, object]:
        return ours_fn(arg), getattr(buf.getvalue(), method)(arg)

    return Case("search", label, f"getvalue().{method}()", base, None, ours, check)


def _search_cases() -> list[Case]:
    text = _text_64k()
    cases = []
    for size, data in (("64 KiB", text), ("100 B", text[:100])):
        buf = _filled(data)
        cases += [
            _search_case(f"find 1 byte, {size}", buf, "find", b"\x00"),
            _search_case(f"find word, {size}", buf, "find", b"zebra"),
            _search_case(f"count LF, {size}", buf, "count", b"\n"),
        ]
    head = _filled(b"GET /index.html HTTP/1.1\r\nHost: example.org\r\n\r\n")
    cases.append(_search_case("startswith, 46 B", head, "startswith", b"GET "))
    cases.append(_search_case("endswith, 46 B", head, "endswith", b"\r\n\r\n"))
    return cases


# -- splitting --------------------------------------------------------------------------------


def _split_case(label: str, data: bytes, call: str, sep: bytes | None) -> Case:
    """Fill a pooled buffer, split it, give it back (the views are released then)."""
    pool = electron.BufferPool()

    def split(buf: electron.Buffer) -> list[memoryview]:
        return buf.splitlines() if call == "splitlines" else buf.split(sep)

    def split_bytes(b: bytes) -> list[bytes]:
        return b.splitlines() if call == "splitlines" else b.split(sep)

    def ours(n: int) -> None:
        for _ in range(n):
            buf = pool.get(len(data))
            buf.write(data)
            split(buf)
            pool.put(buf)

    def base(n: int) -> None:
        for _ in range(n):
            buf = pool.get(len(data))
            buf.write(data)
            split_bytes(buf.getvalue())
            pool.put(buf)

    def check() -> tuple[object, object]:
        return [v.tobytes() for v in split(_filled(data))], split_bytes(data)

    what = "splitlines()" if call == "splitlines" else f"split({sep!r})"
    return Case("split", f"{what}, {label}", f"getvalue().{what}", base, None, ours, check)


def _split_cases() -> list[Case]:
    text = _text_64k()
    cases = []
    for label, data in (
        ("64 KiB, 1000 lines", text),
        ("4 KiB, 64 lines", text[:4096]),
        ("64 KiB, 16 lines of 4 KiB", _long_lines(text)),
    ):
        cases += [
            _split_case(label, data, "splitlines", None),
            _split_case(label, data, "split", b"\n"),
            _split_case(label, data, "split", None),
        ]
    return cases


# -- replacing --------------------------------------------------------------------------------


def _replace_cases() -> list[Case]:
    cases: list[Case] = []
    text = _text_64k()
    for label, data, old, new in (
        ("64 KiB, 10 matches", _with_markers(text, 10), b"<%>", b"[replaced]"),
        ("64 KiB, 1000 matches", text, b"\n", b"\r\n"),
        ("64 KiB, 8000 matches", text, b" ", b"&nbsp;"),
        ("16 KiB, 4 matches", _with_markers(text[: 16 << 10], 4), b"<%>", b"[replaced]"),
        ("1 KiB, 2 matches", text[:1024], b"elit,", b"ELIT;"),
    ):
        src = _filled(data)
        dest = electron.Buffer(2 * len(data.replace(old, new)))

        def ours(
            n: int,
            src: electron.Buffer = src,
            dest: electron.Buffer = dest,
            old: bytes = old,
            new: bytes = new,
        ) -> None:
            for _ in range(n):
                dest.clear()
                src.replace_into(old, new, dest)

        def base(n: int, src: electron.Buffer = src, old: bytes = old, new: bytes = new) -> None:
            for _ in range(n):
                src.getvalue().replace(old, new)

        def base_w(
            n: int,
            src: electron.Buffer = src,
            dest: electron.Buffer = dest,
            old: bytes = old,
            new: bytes = new,
        ) -> None:
            for _ in range(n):
                dest.clear()
                dest.write(src.getvalue().replace(old, new))

        def check(
            src: electron.Buffer = src, old: bytes = old, new: bytes = new
        ) -> tuple[object, object]:
            out = electron.Buffer()
            src.replace_into(old, new, out)
            return out.getvalue(), src.getvalue().replace(old, new)

        cases.append(
            Case(
                "replace",
                f"replace_into, {label}",
                "getvalue().replace()",
                base,
                base_w,
                ours,
                check,
            )
        )
    return cases


# -- writers: HTML, JSON, numbers ---------------------------------------------------------------


def _writer_case(
    group: str,
    label: str,
    stdlib: str,
    value: object,
    fn: Callable[[object], bytes],
    method: Callable[[electron.Buffer, object], int],
) -> Case:
    buf = electron.Buffer(1 << 16)

    # Every variant makes one Python-level call per item (fn or method, both wrappers), so
    # the ratio compares the work inside; the buffer is cleared every 1000 items.
    def ours(n: int) -> None:
        for done in range(0, n, 1000):
            buf.clear()
            for _ in range(min(1000, n - done)):
                method(buf, value)

    def base(n: int) -> None:
        for _ in range(n):
            fn(value)

    def base_w(n: int) -> None:
        write = buf.write
        for done in range(0, n, 1000):
            buf.clear()
            for _ in range(min(1000, n - done)):
                write(fn(value))

    def check() -> tuple[object, object]:
        out = electron.Buffer()
        method(out, value)
        return out.getvalue(), fn(value)

    return Case(group, label, stdlib, base, base_w, ours, check)


_SHORT = "Hello, World! item 42"
_SHORT_SPECIAL = '<b>Tom & "Jerry"</b>'
_LONG = "lorem ipsum dolor sit amet, consectetur adipiscing elit " * 18  # ~1 KiB
_LONG_SPECIAL = "a <b>c</b> & 'd' " * 60
_UNICODE = "héllo wörld ünïcode ☃ " * 40
_UNICODE_SPECIAL = "héllo <wörld> & ☃ " * 40


def _html_cases() -> list[Case]:
    def method(b: electron.Buffer, s: object) -> int:
        return b.write_html_escaped(s)  # type: ignore[arg-type]

    def stdlib(s: object) -> bytes:
        return html.escape(s).encode()  # type: ignore[arg-type]

    return [
        _writer_case(
            "html", f"write_html_escaped, {label}", "html.escape(s).encode()", s, stdlib, method
        )
        for label, s in (
            ("21 chars, clean", _SHORT),
            ("20 chars, 6 specials", _SHORT_SPECIAL),
            ("1 KiB, clean", _LONG),
            ("1 KiB, 360 specials", _LONG_SPECIAL),
            ("non-ASCII 0.9 KiB, clean", _UNICODE),
            ("non-ASCII 0.7 KiB, specials", _UNICODE_SPECIAL),
        )
    ]


def _json_cases() -> list[Case]:
    def method(b: electron.Buffer, s: object) -> int:
        return b.write_json_string(s)  # type: ignore[arg-type]

    def method_u(b: electron.Buffer, s: object) -> int:
        return b.write_json_string(s, ensure_ascii=False)  # type: ignore[arg-type]

    def stdlib(s: object) -> bytes:
        return json.dumps(s).encode()

    def stdlib_u(s: object) -> bytes:
        return json.dumps(s, ensure_ascii=False).encode()

    texts = (
        ("21 chars", _SHORT),
        ("12 chars, 5 escapes", 'say "hi"\n\t\\'),
        ("1 KiB", _LONG),
        ("non-ASCII 0.9 KiB", _UNICODE),
    )
    cases = [
        _writer_case(
            "json", f"write_json_string, {label}", "json.dumps(s).encode()", s, stdlib, method
        )
        for label, s in texts
    ]
    cases += [
        _writer_case(
            "json",
            f"write_json_string(ensure_ascii=False), {label}",
            "json.dumps(s, ensure_ascii=False).encode()",
            s,
            stdlib_u,
            method_u,
        )
        for label, s in texts
    ]
    return cases


def _number_cases() -> list[Case]:
    def method_i(b: electron.Buffer, v: object) -> int:
        return b.write_int(v)  # type: ignore[arg-type]

    def stdlib_i(v: object) -> bytes:
        return str(v).encode()

    def method_f(b: electron.Buffer, v: object) -> int:
        return b.write_float(v)  # type: ignore[arg-type]

    def stdlib_f(v: object) -> bytes:
        return repr(v).encode()

    cases = [
        _writer_case("numbers", f"write_int({label})", "str(n).encode()", v, stdlib_i, method_i)
        for label, v in (("42", 42), ("1234567", 1234567), ("-2**40", -(2**40)), ("2**64", 2**64))
    ]
    cases += [
        _writer_case("numbers", f"write_float({label})", "repr(x).encode()", v, stdlib_f, method_f)
        for label, v in (("0.5", 0.5), ("pi", 3.141592653589793), ("1e300", 1e300))
    ]
    return cases


# -- decoding ---------------------------------------------------------------------------------


def _decode_cases() -> list[Case]:
    cases: list[Case] = []
    for label, data in (
        ("64 KiB ASCII", _text_64k()),
        ("64 KiB non-ASCII", ("☃ héllo " * 5958).encode()),
        ("100 B", _text_64k()[:100]),
    ):
        buf = _filled(data)

        def ours_u(n: int, buf: electron.Buffer = buf) -> None:
            for _ in range(n):
                buf.is_utf8()

        def base_u(n: int, buf: electron.Buffer = buf) -> None:
            for _ in range(n):
                try:
                    buf.getvalue().decode()
                except UnicodeDecodeError:
                    pass

        def ours_d(n: int, buf: electron.Buffer = buf) -> None:
            for _ in range(n):
                buf.decode()

        def base_d(n: int, buf: electron.Buffer = buf) -> None:
            for _ in range(n):
                buf.getvalue().decode()

        def check_u(buf: electron.Buffer = buf) -> tuple[object, object]:
            return buf.is_utf8(), True

        def check_d(buf: electron.Buffer = buf) -> tuple[object, object]:
            return buf.decode(), buf.getvalue().decode()

        cases.append(
            Case(
                "decode",
                f"is_utf8, {label}",
                "try getvalue().decode()",
                base_u,
                None,
                ours_u,
                check_u,
            )
        )
        cases.append(
            Case("decode", f"decode, {label}", "getvalue().decode()", base_d, None, ours_d, check_d)
        )
    return cases


# -- running ----------------------------------------------------------------------------------


def all_cases() -> list[Case]:
    """Every case, in report order."""
    return [
        *_search_cases(),
        *_split_cases(),
        *_replace_cases(),
        *_html_cases(),
        *_json_cases(),
        *_number_cases(),
        *_decode_cases(),
    ]


def _calibrate(fn: Loop, target_ns: float) -> int:
    """A loop count for which ``fn(n)`` takes about ``target_ns`` (at least 1)."""
    n = 1
    while True:
        t0 = time.perf_counter_ns()
        fn(n)
        took = time.perf_counter_ns() - t0
        if took >= target_ns / 10 or n >= 1 << 20:
            return max(1, int(n * target_ns / max(took, 1)))
        n *= 10


def _interleaved(fns: Sequence[Loop], n: int, rounds: int) -> list[float]:
    """Nanoseconds per iteration of each ``fn(n)``: the fastest of ``rounds`` interleaved runs."""
    for fn in fns:
        fn(max(1, n // 10))  # warm up
    best = [float("inf")] * len(fns)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for k, fn in enumerate(fns):
                t0 = time.perf_counter_ns()
                fn(n)
                best[k] = min(best[k], time.perf_counter_ns() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return [b / n for b in best]


def run(quick: bool, repeat: int | None) -> list[Result]:
    """Check and measure every case; return the results with their ratios filled in."""
    rounds = repeat or (3 if quick else 15)
    target_ns = 0.4e6 if quick else 8e6  # per timed run
    results: list[Result] = []
    for case in all_cases():
        got, expected = case.check()
        if got != expected:
            raise AssertionError(f"{case.label}: electron gives {got!r}, stdlib {expected!r}")
        fns = [case.base, *([case.base_write] if case.base_write else []), case.ours]
        n = _calibrate(case.base, target_ns)
        times = _interleaved(fns, n, rounds)
        base = Result(case.group, f"{case.label} | {case.stdlib}", times[0])
        results.append(base)
        ours = Result(case.group, f"{case.label} | electron", times[-1])
        ours.baseline = base.name
        ours.ratio = base.ns_per_op / ours.ns_per_op
        if case.base_write is not None:
            base_w = Result(case.group, f"{case.label} | {case.stdlib} + write", times[1])
            base_w.baseline = base.name
            base_w.ratio = base.ns_per_op / base_w.ns_per_op
            ours.extra["vs_write"] = base_w.ns_per_op / ours.ns_per_op
            results.append(base_w)
        results.append(ours)
    return results


def print_results(title: str, results: Sequence[Result]) -> None:
    """The table: ns per operation, ratio to the baseline and to the ``+ write`` row."""
    print(f"\n{title}")
    header = f"{'case':66} {'ns/op':>10} {'ratio':>8} {'vs +write':>9}"
    print(header)
    print("-" * len(header))
    for r in results:
        ratio = f"{r.ratio:7.2f}x" if r.ratio is not None else "   1.00x"
        vs_w = r.extra.get("vs_write")
        vs_w_text = f"{vs_w:8.2f}x" if vs_w is not None else ""
        name = r.name if len(r.name) <= 66 else r.name[:63] + "..."
        print(f"{name:66} {r.ns_per_op:10.1f} {ratio:>8} {vs_w_text:>9}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.text", description=__doc__)
    add_common_args(parser)
    args = parser.parse_args(argv)
    results = run(args.quick, args.repeat)
    core = "compiled (mypyc)" if electron.COMPILED else "pure Python"
    print_results(f"electron text utilities vs the standard library ({core}; best of N)", results)
    if args.json:
        write_json(args.json, "text", results)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
