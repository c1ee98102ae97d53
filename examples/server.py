"""electron's example aiohttp server, and the target of the load test.

Run ``python examples/server.py [--host H] [--port P] [--workers N] [--no-electron]``; it prints
one line ``electron example server listening on http://HOST:PORT`` once it accepts
connections (``--port 0`` picks a free port). Routes:

- ``GET /``: ``Hello, World!``
- ``GET /json``: a small JSON document (msgspec's ``bytes``: for a body this small, plain
  ``bytes`` are the fastest way, with electron or without)
- ``GET /bytes/{n}?seed=K``: n bytes (n <= 8 MiB), byte i = ``(K*31 + i) % 251``. From
  ``POOLED_FROM`` (128 KiB) up they are built in pooled memory (``request_buffer`` +
  ``PooledResponse``, sent without a copy); below, as plain ``bytes``, which is faster for
  small bodies with electron or without (``docs/benchmarks.md``). ``&pooled=1`` takes the
  pooled path at every size (how the benchmark measures what it costs)
- ``POST /upload``: the body is read into pooled memory (413 over ``--upload-limit``);
  answers ``{"size": ..., "sha256": ...}``
- ``GET /render?name=..&items=N``: an HTML page, joined as one ``str`` and encoded once
  (the fastest way for pages of this size, with electron or without)
- ``GET /stats``: the ArenaOfPools' statistics (it does not count itself), plus the
  middleware's counters (``middleware``) and the routes that used most memory
  (``top_routes``)
- ``GET /metrics``: Prometheus metrics (``electron.metrics`` and the process's own; with
  ``--no-electron`` the process's own only, so that both servers carry the same libraries)

``--no-electron`` serves the same routes with plain allocation: the load test's baseline.
``--workers N`` runs N processes on one port (SO_REUSEPORT), each with its own ArenaOfPools;
their metrics are aggregated through prometheus_client's multiprocess mode, in
``$PROMETHEUS_MULTIPROC_DIR`` (wiped at start) or else a temporary directory, so that a
scrape of any worker sees all of them. Under gunicorn::

    ELECTRON_SERVER_ARGS="--max-bytes 268435456" PROMETHEUS_MULTIPROC_DIR=/run/electron-metrics \
        gunicorn examples.server:app_factory --worker-class aiohttp.GunicornUVLoopWebWorker \
        --workers 2 --bind 127.0.0.1:8080

(see ``docs/operating.md`` for the ``child_exit`` hook).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import dataclasses
import errno
import functools
import hashlib
import html
import os
import select
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

import electron
from electron.aio import aiohttp as electron_aiohttp

__all__ = ("MAX_BYTES", "POOLED_FROM", "app_factory", "main", "make_app", "pattern")

#: Largest body ``GET /bytes/{n}`` serves.
MAX_BYTES = 8 << 20
#: ``GET /bytes/{n}`` builds bodies from this size in pooled memory: below it, the pooled
#: path's fixed cost per request (lending, returning, a bigger response object) outweighs
#: the copies and page faults it saves (measured: docs/benchmarks.md).
POOLED_FROM = 128 << 10
#: Largest ``items`` ``GET /render`` accepts.
MAX_ITEMS = 10_000
MAX_NAME = 1_000
DEFAULT_UPLOAD_LIMIT = 16 << 20
_PERIOD = 251
_LISTENING = "electron example server listening on http://{host}:{port}"
_TOP_ROUTES = 10
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class _Item(msgspec.Struct):
    id: int
    label: str


class _Doc(msgspec.Struct):
    message: str
    server: str
    items: list[_Item]


_DOC = _Doc("Hello, World!", "electron", [_Item(i, f"item {i}") for i in range(3)])
_ENCODER = msgspec.json.Encoder()


def _pid_header() -> dict[str, str]:
    """/stats says which worker process answered (``--workers``)."""
    return {"X-Server-Pid": str(os.getpid())}


@functools.lru_cache(maxsize=_PERIOD)
def _period(seed: int) -> bytes:
    """One period of the ``/bytes`` pattern for ``seed``: byte i is ``(seed*31 + i) % 251``."""
    start = (seed * 31) % _PERIOD
    base = bytes(range(_PERIOD))
    return base[start:] + base[:start]


def pattern(n: int, seed: int) -> bytes:
    """The body ``GET /bytes/{n}?seed={seed}`` serves (for clients that check it)."""
    period = _period(seed % _PERIOD)
    return (period * (n // _PERIOD + 1))[:n]


def _fill(view: memoryview, n: int, seed: int) -> None:
    """Write the ``/bytes`` pattern into ``view[:n]``: one period, then doubling copies."""
    period = _period(seed % _PERIOD)
    k = min(n, _PERIOD)
    view[:k] = period[:k]
    while k < n:  # view[:k] holds whole periods, so copying it keeps the pattern going
        m = min(k, n - k)
        view[k : k + m] = view[:m]
        k += m


def _write_pattern(buf: electron.Buffer, n: int, seed: int) -> None:
    """Write the ``/bytes`` pattern into ``buf``: one period, then doubling copies of what it
    holds. ``Buffer.write`` copies without zeroing first (``reserve`` zeroes the view it
    exposes, a pass over the body this route does not need); below 256 KiB that pass costs
    less than the views the doubling takes, so small bodies are filled through ``reserve``."""
    if n < 256 << 10:
        _fill(buf.reserve(n), n, seed)
        buf.commit(n)
        return
    period = _period(seed % _PERIOD)
    k = min(n, _PERIOD)
    buf.write(period[:k])
    while k < n:
        m = min(k, n - k)
        buf.write(buf.view()[:m])
        k += m


def _plain_bytes(n: int, seed: int) -> web.Response:
    body = bytearray(n)
    _fill(memoryview(body), n, seed)
    return web.Response(body=body)


def _bytes_args(request: web.Request) -> tuple[int, int]:
    raw_n = request.match_info["n"]
    raw_seed = request.query.get("seed", "0")
    try:
        if len(raw_n) > 12 or len(raw_seed) > 19:
            raise ValueError
        n, seed = int(raw_n), int(raw_seed)
    except ValueError:
        raise web.HTTPBadRequest(
            text="n and seed must be integers, e.g. /bytes/1024?seed=7"
        ) from None
    if n < 0 or n > MAX_BYTES:
        raise web.HTTPBadRequest(
            text=f"n={n} is out of range: /bytes/{{n}} serves 0 to {MAX_BYTES} bytes (8 MiB)"
        )
    return n, seed


def _render_args(request: web.Request) -> dict[str, Any]:
    name = request.query.get("name", "World")
    raw = request.query.get("items", "10")
    if len(name) > MAX_NAME:
        raise web.HTTPBadRequest(text=f"name is too long: at most {MAX_NAME} characters")
    try:
        if len(raw) > 9:
            raise ValueError
        count = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text="items must be an integer") from None
    if count < 0 or count > MAX_ITEMS:
        raise web.HTTPBadRequest(text=f"items={count} is out of range: 0 to {MAX_ITEMS}")
    return {"name": name, "items": [_Item(i, f"item {i}") for i in range(count)]}


def _page(name: str, items: list[_Item]) -> bytes:
    """The /render page: joined as one ``str``, encoded once.

    The fastest way for a page of this size, with electron or without: written piece by
    piece into a pooled buffer instead, ``/render?items=100`` ran at 0.6x the throughput
    (docs/benchmarks.md). Small bodies are best left to plain ``bytes``.
    """
    name = html.escape(name)
    parts = [
        '<!doctype html>\n<html>\n<head><meta charset="utf-8"><title>Hello, ',
        name,
        "</title></head>\n<body>\n<h1>Hello, ",
        name,
        "!</h1>\n<ul>",
    ]
    for item in items:
        parts += [
            '\n<li id="item-',
            str(item.id),
            '">',
            html.escape(item.label),
            " <em>for ",
            name,
            "</em></li>",
        ]
    parts.append("\n</ul>\n</body>\n</html>\n")
    return "".join(parts).encode()


async def hello(request: web.Request) -> web.StreamResponse:
    return web.Response(text="Hello, World!")


# -- both: small bodies are plain bytes, the fastest way with electron or without ----------


async def json_doc(request: web.Request) -> web.StreamResponse:
    """A small JSON document: msgspec's ``bytes`` (pooled memory would only add a copy)."""
    return web.Response(body=_ENCODER.encode(_DOC), content_type="application/json")


async def render(request: web.Request) -> web.StreamResponse:
    context = _render_args(request)
    body = _page(context["name"], context["items"])
    return web.Response(body=body, content_type="text/html", charset="utf-8")


def _json(doc: object, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_ENCODER.encode(doc), content_type="application/json", headers=headers)


# -- electron: pooled memory ---------------------------------------------------------------


def _electron_routes(
    aop: electron.ArenaOfPools, mw: electron_aiohttp.Middleware
) -> list[web.RouteDef]:
    async def pooled_bytes(request: web.Request) -> web.StreamResponse:
        n, seed = _bytes_args(request)
        if n < POOLED_FROM and "pooled" not in request.query:
            return _plain_bytes(n, seed)
        buf = electron_aiohttp.request_buffer(request, n)
        _write_pattern(buf, n, seed)
        return electron_aiohttp.PooledResponse(buf)

    async def upload(request: web.Request) -> web.StreamResponse:
        buf = await electron_aiohttp.read_body(request)
        return _json({"size": len(buf), "sha256": hashlib.sha256(buf.view()).hexdigest()})

    async def stats(request: web.Request) -> web.StreamResponse:
        doc: dict[str, object] = dict(aop.statistics().as_dict())
        doc["middleware"] = mw.statistics().as_dict()
        doc["top_routes"] = [r.as_dict() for r in mw.route_usage(top=_TOP_ROUTES)]
        return _json(doc, headers=_pid_header())

    return [
        web.get("/json", json_doc),
        web.get("/bytes/{n}", pooled_bytes),
        # Expect: 100-continue over --upload-limit: 413 before the client sends the body.
        web.post("/upload", upload, expect_handler=electron_aiohttp.refuse_oversized()),
        web.get("/render", render),
        web.get("/stats", stats),
    ]


# -- baseline: plain allocation ------------------------------------------------------------


def _plain_routes() -> list[web.RouteDef]:
    async def plain_bytes(request: web.Request) -> web.StreamResponse:
        return _plain_bytes(*_bytes_args(request))

    async def upload(request: web.Request) -> web.StreamResponse:
        body = await request.read()  # the app's client_max_size answers 413 over the limit
        return _json({"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})

    fields = dataclasses.fields(electron.ArenaOfPoolsStatistics)
    zeros: dict[str, object] = {f.name: 0 for f in fields}
    zeros["middleware"] = {
        f.name: 0 for f in dataclasses.fields(electron_aiohttp.MiddlewareStatistics)
    }
    zeros["top_routes"] = []

    async def stats(request: web.Request) -> web.StreamResponse:
        return _json(zeros, headers=_pid_header())

    return [
        web.get("/json", json_doc),
        web.get("/bytes/{n}", plain_bytes),
        web.post("/upload", upload),
        web.get("/render", render),
        web.get("/stats", stats),
    ]


def make_app(
    aop: electron.ArenaOfPools | None,
    *,
    upload_limit: int = DEFAULT_UPLOAD_LIMIT,
    acquire_timeout: float = 1.0,
    metrics: bool = True,
    metrics_interval: float = 5.0,
) -> web.Application:
    """The example app: with electron's middleware over ``aop``, or plain with ``None``.

    With ``metrics`` (and electron) it serves ``GET /metrics``: from a registry of its own
    (with the process collector) in one process, or from every worker's figures in
    prometheus_client's multiprocess mode (published every ``metrics_interval`` seconds).
    """
    app = web.Application(client_max_size=upload_limit)
    app.router.add_get("/", hello)
    if aop is None:
        app.add_routes(_plain_routes())
        if metrics:
            _add_process_metrics(app)
    else:
        # /stats is excluded: with the budget spent it must answer at once, not wait for it.
        mw = electron_aiohttp.setup(
            app, aop, acquire_timeout=acquire_timeout, body_limit=upload_limit, exclude=("/stats",)
        )
        app.add_routes(_electron_routes(aop, mw))
        if metrics:
            _add_metrics(app, metrics_interval)
    return app


def _add_metrics(app: web.Application, interval: float) -> None:
    # Imported here, not at the top: a --workers parent must not import prometheus_client
    # before it has set PROMETHEUS_MULTIPROC_DIR for its workers.
    try:
        import prometheus_client

        from electron import metrics
    except ImportError:  # the metrics extra is not installed: serve without /metrics
        print("prometheus-client is not installed: no GET /metrics", file=sys.stderr)
        return

    registry = None
    if not metrics.multiprocess_enabled():
        registry = prometheus_client.CollectorRegistry()
        prometheus_client.ProcessCollector(registry=registry)
    metrics.setup_metrics(app, interval=interval, registry=registry)


def _add_process_metrics(app: web.Application) -> None:
    """The baseline's ``GET /metrics``: the process's own figures (prometheus_client's
    process collector), so that a comparison's two servers carry the same libraries."""
    try:
        import prometheus_client
    except ImportError:
        print("prometheus-client is not installed: no GET /metrics", file=sys.stderr)
        return
    registry = prometheus_client.CollectorRegistry()
    prometheus_client.ProcessCollector(registry=registry)
    content_type = {"Content-Type": prometheus_client.CONTENT_TYPE_LATEST}

    async def serve_metrics(request: web.Request) -> web.StreamResponse:
        return web.Response(body=prometheus_client.generate_latest(registry), headers=content_type)

    app.router.add_get("/metrics", serve_metrics)


# -- running it ----------------------------------------------------------------------------


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python examples/server.py", description=__doc__.split("\n")[0]
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one (default 8080)")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the port (default 1)")
    p.add_argument(
        "--no-electron", action="store_true", help="plain allocation: the load-test baseline"
    )
    p.add_argument(
        "--upload-limit",
        type=int,
        default=DEFAULT_UPLOAD_LIMIT,
        help=f"largest POST /upload body in bytes (default {DEFAULT_UPLOAD_LIMIT})",
    )
    p.add_argument(
        "--arena-size",
        type=_arena_size,
        default=64 << 10,
        help='bytes per arena, or "auto" to learn it from the load (default 65536)',
    )
    p.add_argument("--pool-size", type=int, default=64, help="idle arenas kept (default 64)")
    p.add_argument(
        "--trim-interval",
        type=float,
        default=30.0,
        help="seconds between releases of idle memory (default 30)",
    )
    p.add_argument("--max-arenas", type=int, default=None, help="arenas lent at once (budget)")
    p.add_argument("--max-bytes", type=int, default=None, help="bytes lent at once (budget)")
    p.add_argument(
        "--acquire-timeout",
        type=float,
        default=1.0,
        help="seconds a request waits for the budget before 503 (default 1)",
    )
    p.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="event loop (default: uvloop when installed)",
    )
    p.add_argument("--no-metrics", action="store_true", help="do not serve GET /metrics")
    p.add_argument(
        "--metrics-interval",
        type=float,
        default=5.0,
        help="seconds between two publications of a worker's metrics (--workers; default 5)",
    )
    args = p.parse_args(argv)
    if args.metrics_interval <= 0:
        p.error("--metrics-interval must be > 0")
    if args.workers < 1:
        p.error("--workers must be >= 1")
    if not 0 <= args.port <= 65535:
        p.error("--port must be in 0..65535")
    return args


def _arena_size(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected bytes or "auto", got {text!r}') from None


def _make_aop(args: argparse.Namespace) -> electron.ArenaOfPools:
    return electron.ArenaOfPools(
        arena_size=args.arena_size,
        pool_size=args.pool_size,
        max_arenas=args.max_arenas,
        max_bytes=args.max_bytes,
        trim_interval=args.trim_interval,
    )


def _make_app(args: argparse.Namespace) -> web.Application:
    aop = None if args.no_electron else _make_aop(args)
    return make_app(
        aop,
        upload_limit=args.upload_limit,
        acquire_timeout=args.acquire_timeout,
        metrics=not args.no_metrics,
        metrics_interval=args.metrics_interval,
    )


async def app_factory() -> web.Application:
    """The app for gunicorn (``examples.server:app_factory``), options from the command
    line in ``$ELECTRON_SERVER_ARGS`` (e.g. ``"--max-bytes 268435456"``)."""
    return _make_app(_parse(shlex.split(os.environ.get("ELECTRON_SERVER_ARGS", ""))))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _announce(host: str, port: int) -> None:
    print(_LISTENING.format(host=_url_host(host), port=port), flush=True)


async def _serve(
    args: argparse.Namespace, *, reuse_port: bool, ready: Callable[[str, int], None]
) -> None:
    app = _make_app(args)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, args.host, args.port, reuse_port=reuse_port or None)
        await site.start()
        host, port = runner.addresses[0][:2]
        ready(host, port)
        await stop.wait()
    finally:
        await runner.cleanup()  # closes the ArenaOfPools (app cleanup)


def _run(coro: Coroutine[Any, Any, None], loop_name: str) -> None:
    if loop_name != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop_name == "uvloop":
                raise
        else:
            uvloop.run(coro)
            return
    asyncio.run(coro)


def _die_with_parent() -> None:
    """Linux: have the kernel send this process SIGTERM when its parent dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """Bind (not listen) a SO_REUSEPORT socket: it fixes the port the workers share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock, sock.getsockname()[1]


def _metrics_dir(args: argparse.Namespace) -> Path | None:
    """Prepare prometheus_client's multiprocess directory for the workers (before any of
    them imports prometheus_client): the one in $PROMETHEUS_MULTIPROC_DIR, wiped of old
    files, or a temporary one. Returns the directory to remove at the end, if ours."""
    if args.no_electron or args.no_metrics:
        return None
    given = os.environ.get(_MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("*.db"):  # left by an earlier run: they would be counted
            old.unlink(missing_ok=True)
        return None
    path = Path(tempfile.mkdtemp(prefix="electron-metrics-"))
    os.environ[_MULTIPROC_ENV] = str(path)
    return path


def _forget_worker(pid: int) -> None:
    """A worker exited: its live gauges no longer count (its counters still do)."""
    if _MULTIPROC_ENV not in os.environ:
        return
    try:
        from electron import metrics

        metrics.mark_process_dead(pid)
    except Exception as exc:  # metrics must never stop the shutdown
        print(f"could not forget worker {pid}'s metrics: {exc!r}", file=sys.stderr, flush=True)


def _run_workers(args: argparse.Namespace) -> int:
    own_dir = _metrics_dir(args)
    try:
        return _supervise(args)
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)


def _supervise(
    args: argparse.Namespace, serve: Callable[[Callable[[str, int], None]], None] | None = None
) -> int:
    """Run ``args.workers`` processes on one port (SO_REUSEPORT; ``args.port`` is set to it)
    and announce the port once all of them serve; ``serve(ready)`` is a worker's server (by
    default this example's), which calls ``ready(host, port)`` once it accepts connections.
    Returns the exit status."""
    reserved, port = _reserve_port(args.host, args.port)
    args.port = port
    read_fd, write_fd = os.pipe()
    parent = os.getpid()
    children: set[int] = set()
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:  # worker
            code = 0
            try:
                os.close(read_fd)
                reserved.close()
                _die_with_parent()
                if os.getppid() != parent:
                    os._exit(0)

                def ready(host: str, port: int) -> None:
                    os.write(write_fd, b"r")

                if serve is None:
                    _run(_serve(args, reuse_port=True, ready=ready), args.loop)
                else:
                    serve(ready)
            except BaseException as exc:
                print(f"worker {os.getpid()} failed: {exc!r}", file=sys.stderr, flush=True)
                code = 1
            finally:
                os._exit(code)
        children.add(pid)
    os.close(write_fd)

    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    started = 0
    deadline = time.monotonic() + 60
    while started < args.workers and not stopping:
        wait = deadline - time.monotonic()
        try:
            readable, _, _ = select.select([read_fd], [], [], max(0.0, wait))
        except InterruptedError:
            continue
        if not readable:
            break
        got = os.read(read_fd, args.workers)
        if not got:
            break  # every worker gone
        started += len(got)
    os.close(read_fd)
    code = 0
    if started < args.workers and not stopping:
        print(f"only {started} of {args.workers} workers started", file=sys.stderr, flush=True)
        stop(signal.SIGTERM, None)
        code = 1
    elif not stopping:
        _announce(args.host, port)
    reserved.close()
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        children.discard(pid)
        _forget_worker(pid)
        if not stopping:  # a worker died on its own: take the others down too
            print(f"worker {pid} exited ({status}); stopping", file=sys.stderr, flush=True)
            code = 1
            stop(signal.SIGTERM, None)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGTERM or SIGINT; return the exit status."""
    args = _parse(argv)
    if args.workers > 1:
        return _run_workers(args)
    try:
        _run(_serve(args, reuse_port=False, ready=_announce), args.loop)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"port {args.port} is in use: {exc}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
