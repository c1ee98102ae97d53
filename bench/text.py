"""Benchmarks of Buffer's text utilities, each against the obvious standard-library way.

    python -m bench.text [--quick] [--json FILE] [--repeat N]

For every utility the same run times three things on the same input: the standard-library
expression (``buf.getvalue().find(...)``, ``html.escape(s).encode()``,
``json.dumps(s).encode()``, ``str(n).encode()`` ...: the baseline, ratio 1.00), the same
expression also written into a buffer (``+ write``, where the utility writes), and the
electron method. ``ratio`` is baseline time / electron time (> 1: electron is faster);
the JSON also has ``extra.vs_write``, the ratio against the ``+ write`` row. Before timing,
each case checks that electron and the standard library give the same bytes.

The core may run compiled (mypyc) or as pure Python (``ELECTRON_PURE_PYTHON=1``); the
title says which.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass

import electron

from ._harness import Result, add_common_args, time_loop, write_json

__all__ = ("Case", "all_cases", "main", "run")

Loop = Callable[[int], object]


@dataclass
class Case:
    """One input, timed three ways: stdlib expression, stdlib + write, electron."""

    group: str
    label: str
    stdlib: str  # how the baseline is spelled, for the table
    base: Loop
    base_write: Loop | None
    ours: Loop
    n: int
    check: Callable[[], tuple[object, object]]  # (electron's result, stdlib's result)


def _filled(data: bytes) -> electron.Buffer:
    buf = electron.Buffer(len(data))
    buf.write(data)
    return buf


def _text_64k() -> bytes:
    words = [b"lorem", b"ipsum", b"dolor", b"sit", b"amet", b"consectetur", b"elit", b"sed"]
    lines: list[bytes] = []
    size = 0
    while size < 64 << 10:
        i = len(lines)
        line = b" ".join(words[(i + k) % len(words)] for k in range(9)) + b",%d\n" % i
        lines.append(line)
        size += len(line)
    return b"".join(lines)[: 64 << 10]


# -- searching ---------------------------------------------------------------------------------


def _search_cases() -> list[Case]:
    cases: list[Case] = []
    for size_label, data in (("64 KiB", _text_64k()), ("100 B", _text_64k()[:100])):
        buf = _filled(data)
        for what, sub in (("1 byte", b"\x00"), ("word", b"zebra")):

            def ours(n: int, buf: electron.Buffer = buf, sub: bytes = sub) -> None:
                find = buf.find
                for _ in range(n):
                    find(sub)

            def base(n: int, buf: electron.Buffer = buf, sub: bytes = sub) -> None:
                getvalue = buf.getvalue
                for _ in range(n):
                    getvalue().find(sub)

            def check(buf: electron.Buffer = buf, sub: bytes = sub) -> tuple[object, object]:
                return buf.find(sub), buf.getvalue().find(sub)

            cases.append(
                Case(
                    "search",
                    f"find {what}, {size_label}",
                    "getvalue().find",
                    base,
                    None,
                    ours,
                    2_000 if size_label == "64 KiB" else 50_000,
                    check,
                )
            )

        def ours_c(n: int, buf: electron.Buffer = buf) -> None:
            for _ in range(n):
                buf.count(b"\n")

        def base_c(n: int, buf: electron.Buffer = buf) -> None:
            for _ in range(n):
                buf.getvalue().count(b"\n")

        def check_c(buf: electron.Buffer = buf) -> tuple[object, object]:
            return buf.count(b"\n"), buf.getvalue().count(b"\n")

        cases.append(
            Case(
                "search",
                f"count LF, {size_label}",
                "getvalue().count",
                base_c,
                None,
                ours_c,
                2_000 if size_label == "64 KiB" else 50_000,
                check_c,
            )
        )

    head = _filled(b"GET /index.html HTTP/1.1\r\nHost: example.org\r\n\r\n")

    def ours_s(n: int) -> None:
        for _ in range(n):
            head.startswith(b"GET ")

    def base_s(n: int) -> None:
        for _ in range(n):
            head.getvalue().startswith(b"GET ")

    cases.append(
        Case(
            "search",
            "startswith, 46 B",
            "getvalue().startswith",
            base_s,
            None,
            ours_s,
            50_000,
            lambda: (head.startswith(b"GET "), head.getvalue().startswith(b"GET ")),
        )
    )
    return cases


# -- splitting -----------------------------------------------------------------------------------


def _long_lines(text: bytes) -> bytes:
    """``text`` with its line ends (and commas) turned into spaces, then a LF every 4 KiB."""
    flat = text.replace(b"\n", b" ").replace(b",", b" ")
    return b"".join(flat[i : i + 4095] + b"\n" for i in range(0, len(flat), 4096))


def _split_cases() -> list[Case]:
    cases: list[Case] = []
    text = _text_64k()
    for label, data, n in (
        ("64 KiB, 1000 lines", text, 100),
        ("4 KiB, 64 lines", text[:4096], 2_000),
        ("64 KiB, 16 lines of 4 KiB", _long_lines(text), 2_000),
    ):
        pool = electron.BufferPool()

        def ours(n: int, data: bytes = data, pool: electron.BufferPool = pool) -> None:
            for _ in range(n):  # views are tracked: give the buffer back each time
                buf = pool.get(len(data))
                buf.write(data)
                buf.splitlines()
                pool.put(buf)

        def base(n: int, data: bytes = data, pool: electron.BufferPool = pool) -> None:
            for _ in range(n):
                buf = pool.get(len(data))
                buf.write(data)
                buf.getvalue().splitlines()
                pool.put(buf)

        def check(data: bytes = data) -> tuple[object, object]:
            buf = _filled(data)
            return [v.tobytes() for v in buf.splitlines()], data.splitlines()

        cases.append(
            Case(
                "split",
                f"splitlines, {label}",
                "getvalue().splitlines()",
                base,
                None,
                ours,
                n,
                check,
            )
        )

        for sep_label, sep in ((b"','", b","), ("None", None)):

            def ours_s(
                n: int,
                data: bytes = data,
                pool: electron.BufferPool = pool,
                sep: bytes | None = sep,
            ) -> None:
                for _ in range(n):
                    buf = pool.get(len(data))
                    buf.write(data)
                    buf.split(sep)
                    pool.put(buf)

            def base_s(
                n: int,
                data: bytes = data,
                pool: electron.BufferPool = pool,
                sep: bytes | None = sep,
            ) -> None:
                for _ in range(n):
                    buf = pool.get(len(data))
                    buf.write(data)
                    buf.getvalue().split(sep)
                    pool.put(buf)

            def check_s(data: bytes = data, sep: bytes | None = sep) -> tuple[object, object]:
                return [v.tobytes() for v in _filled(data).split(sep)], data.split(sep)

            cases.append(
                Case(
                    "split",
                    f"split({sep_label!s}), {label}",
                    "getvalue().split()",
                    base_s,
                    None,
                    ours_s,
                    n,
                    check_s,
                )
            )
    return cases


# -- replacing -----------------------------------------------------------------------------------


def _with_markers(data: bytes, k: int) -> bytes:
    step = len(data) // k
    return b"".join(data[i * step : (i + 1) * step] + b"<%>" for i in range(k))


def _replace_cases() -> list[Case]:
    cases: list[Case] = []
    text = _text_64k()
    for label, data, old, new in (
        ("64 KiB, 10 hits", _with_markers(text, 10), b"<%>", b"[replaced]"),
        ("64 KiB, 1000 hits", text, b"\n", b"\r\n"),
        ("64 KiB, 8000 hits", text, b" ", b"&nbsp;"),
        ("16 KiB, 4 hits", _with_markers(text[: 16 << 10], 4), b"<%>", b"[replaced]"),
        ("1 KiB, 2 hits", text[:1024], b"elit,", b"ELIT;"),
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

        n = 200 if len(data) > 4096 else 20_000
        cases.append(
            Case(
                "replace",
                f"replace_into, {label}",
                "getvalue().replace()",
                base,
                base_w,
                ours,
                n,
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
    n: int,
) -> Case:
    buf = electron.Buffer(1 << 16)

    # Both sides make one Python-level call per item (the wrappers), so the ratio compares
    # the work inside; the buffer is cleared every 1000 items to stay around 1 MiB at most.
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

    return Case(group, label, stdlib, base, base_w, ours, n, check)


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

    texts = (
        ("short, clean", _SHORT, 200_000),
        ("short, 6 specials", _SHORT_SPECIAL, 200_000),
        ("1 KiB, clean", _LONG, 20_000),
        ("1 KiB, 360 specials", _LONG_SPECIAL, 5_000),
        ("non-ASCII 0.9 KiB, clean", _UNICODE, 20_000),
        ("non-ASCII 0.7 KiB, specials", _UNICODE_SPECIAL, 5_000),
    )
    return [
        _writer_case(
            "html", f"write_html_escaped, {label}", "html.escape(s).encode()", s, stdlib, method, n
        )
        for label, s, n in texts
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
        ("short", _SHORT, 200_000),
        ("short, quotes", 'say "hi"\n\t\\', 200_000),
        ("1 KiB", _LONG, 20_000),
        ("non-ASCII 0.9 KiB", _UNICODE, 20_000),
    )
    cases = [
        _writer_case(
            "json", f"write_json_string, {label}", "json.dumps(s).encode()", s, stdlib, method, n
        )
        for label, s, n in texts
    ]
    cases += [
        _writer_case(
            "json",
            f"write_json_string(ensure_ascii=False), {label}",
            "json.dumps(s, ensure_ascii=False).encode()",
            s,
            stdlib_u,
            method_u,
            n,
        )
        for label, s, n in texts[::2] + texts[3:]
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
        _writer_case(
            "numbers", f"write_int({label})", "str(n).encode()", v, stdlib_i, method_i, 300_000
        )
        for label, v in (("42", 42), ("1234567", 1234567), ("-2**40", -(2**40)), ("2**64", 2**64))
    ]
    cases += [
        _writer_case(
            "numbers", f"write_float({label})", "repr(x).encode()", v, stdlib_f, method_f, 200_000
        )
        for label, v in (("0.5", 0.5), ("pi", 3.141592653589793), ("1e300", 1e300))
    ]
    return cases


# -- decoding ------------------------------------------------------------------------------------


def _decode_cases() -> list[Case]:
    cases: list[Case] = []
    for label, data, n in (
        ("64 KiB ASCII", _text_64k(), 2_000),
        ("64 KiB non-ASCII", ("☃ héllo " * 5958).encode(), 500),
        ("100 B", _text_64k()[:100], 100_000),
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
                n,
                check_u,
            )
        )
        cases.append(
            Case(
                "decode",
                f"decode, {label}",
                "getvalue().decode()",
                base_d,
                None,
                ours_d,
                n,
                check_d,
            )
        )
    return cases


# -- running -------------------------------------------------------------------------------------


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


def run(quick: bool, repeat: int | None) -> list[Result]:
    """Check and measure every case; return the results with their ratios filled in."""
    reps = repeat or (3 if quick else 9)
    results: list[Result] = []
    for case in all_cases():
        got, expected = case.check()
        if got != expected:
            raise AssertionError(f"{case.label}: electron gives {got!r}, stdlib {expected!r}")
        n = max(1, case.n // 20) if quick else case.n
        base = Result(case.group, f"{case.label} | {case.stdlib}", time_loop(case.base, n, reps))
        results.append(base)
        base_w = None
        if case.base_write is not None:
            base_w = Result(
                case.group,
                f"{case.label} | {case.stdlib} + write",
                time_loop(case.base_write, n, reps),
            )
            base_w.baseline = base.name
            base_w.ratio = base.ns_per_op / base_w.ns_per_op
            results.append(base_w)
        ours = Result(case.group, f"{case.label} | electron", time_loop(case.ours, n, reps))
        ours.baseline = base.name
        ours.ratio = base.ns_per_op / ours.ns_per_op
        if base_w is not None:
            ours.extra["vs_write"] = base_w.ns_per_op / ours.ns_per_op
        results.append(ours)
    return results


def _print(results: list[Result], title: str) -> None:
    print(f"\n{title}")
    header = f"{'case':58} {'ns/op':>10} {'ratio':>8} {'vs +write':>9}"
    print(header)
    print("-" * len(header))
    for r in results:
        ratio = f"{r.ratio:7.2f}x" if r.ratio is not None else "   1.00x"
        vs_w = r.extra.get("vs_write")
        vs_w_text = f"{vs_w:8.2f}x" if vs_w is not None else ""
        name = r.name if len(r.name) <= 58 else r.name[:55] + "..."
        print(f"{name:58} {r.ns_per_op:10.1f} {ratio:>8} {vs_w_text:>9}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.text", description=__doc__)
    add_common_args(parser)
    args = parser.parse_args(argv)
    results = run(args.quick, args.repeat)
    core = "compiled (mypyc)" if electron.COMPILED else "pure Python"
    _print(results, f"electron text utilities vs the standard library ({core}; min of N runs)")
    if args.json:
        write_json(args.json, "text", results)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
