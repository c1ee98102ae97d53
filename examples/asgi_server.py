"""electron's example ASGI server (Starlette): the routes and contract of ``examples/server.py``.

Run ``python examples/asgi_server.py [--host H] [--port P] [--workers N]
[--server uvicorn|hypercorn|granian] [--no-electron]``; it prints one line ``electron example
server listening on http://HOST:PORT`` once it accepts connections (``--port 0`` picks a free
port). The routes are those of ``examples/server.py`` (``/``, ``/json``, ``/render``,
``/bytes/{n}?seed=K``, ``/upload``, ``/stats``, ``/metrics``), with the same bodies and
answers; ``--no-electron`` serves them with plain allocation, the baseline.

Servers: uvicorn (default; ``--loop auto`` takes uvloop where installed, ``--http`` picks
httptools or h11), hypercorn (in-process, on ``--loop``), granian (its own process manager,
``python -m granian``, configured through ``$ELECTRON_ASGI_ARGS``). ``--workers N`` runs N
processes on one port (SO_REUSEPORT; granian: its own workers); ``/metrics`` then shows the
worker that answers. For another server, serve ``examples.asgi_server:app_factory`` (a factory
reading its options from ``$ELECTRON_ASGI_ARGS``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import importlib.util
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import electron
from electron.asgi import ElectronMiddleware, PooledResponse, read_body, request_buffer, setup

__all__ = ("app_factory", "main", "make_app")

_ARGS_ENV = "ELECTRON_ASGI_ARGS"
_TOP_ROUTES = 10


def _load_shared() -> ModuleType:
    """examples/server.py, for the routes' contract (pattern, page, documents, options)."""
    name = "electron_example_server"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("server.py"))
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


shared = _load_shared()


class _Refused(Exception):
    """A bad request: answered 400 with the text of ``examples/server.py``."""


def _text(status: int, text: str) -> Response:
    return Response(text, status_code=status, media_type="text/plain")


def _json(doc: object, headers: dict[str, str] | None = None) -> Response:
    return Response(shared._ENCODER.encode(doc), headers=headers, media_type="application/json")


def _bytes_args(request: Request) -> tuple[int, int]:
    raw_n = request.path_params["n"]
    raw_seed = request.query_params.get("seed", "0")
    try:
        if len(raw_n) > 12 or len(raw_seed) > 19:
            raise ValueError
        n, seed = int(raw_n), int(raw_seed)
    except ValueError:
        raise _Refused("n and seed must be integers, e.g. /bytes/1024?seed=7") from None
    if n < 0 or n > shared.MAX_BYTES:
        raise _Refused(
            f"n={n} is out of range: /bytes/{{n}} serves 0 to {shared.MAX_BYTES} bytes (8 MiB)"
        )
    return n, seed


async def hello(request: Request) -> Response:
    return Response(b"Hello, World!", media_type="text/plain")


async def json_doc(request: Request) -> Response:
    """A small JSON document: msgspec's ``bytes`` (pooled memory would only add a copy)."""
    return Response(shared._ENCODER.encode(shared._DOC), media_type="application/json")


async def render(request: Request) -> Response:
    name = request.query_params.get("name", "World")
    raw = request.query_params.get("items", "10")
    if len(name) > shared.MAX_NAME:
        return _text(400, f"name is too long: at most {shared.MAX_NAME} characters")
    try:
        if len(raw) > 9:
            raise ValueError
        count = int(raw)
    except ValueError:
        return _text(400, "items must be an integer")
    if count < 0 or count > shared.MAX_ITEMS:
        return _text(400, f"items={count} is out of range: 0 to {shared.MAX_ITEMS}")
    items = [shared._Item(i, f"item {i}") for i in range(count)]
    return Response(shared._page(name, items), media_type="text/html; charset=utf-8")


def _pid() -> dict[str, str]:
    return {"X-Server-Pid": str(os.getpid())}


def _plain_bytes(n: int, seed: int) -> Response:
    body = bytearray(n)
    shared._fill(memoryview(body), n, seed)
    return _ByteArrayResponse(body, media_type="application/octet-stream")


# -- electron: pooled memory ---------------------------------------------------------------


def _electron_routes(aop: electron.ArenaOfPools, mw: ElectronMiddleware) -> list[Route]:
    async def pooled_bytes(request: Request) -> Response:
        try:
            n, seed = _bytes_args(request)
        except _Refused as exc:
            return _text(400, str(exc))
        if n < shared.POOLED_FROM and "pooled" not in request.query_params:
            return _plain_bytes(n, seed)  # small: plain bytes are faster (examples/server.py)
        buf = request_buffer(request, n)
        shared._write_pattern(buf, n, seed)
        return PooledResponse(buf)

    async def upload(request: Request) -> Response:
        buf = await read_body(request)
        return _json({"size": len(buf), "sha256": hashlib.sha256(buf.view()).hexdigest()})

    async def stats(request: Request) -> Response:
        doc: dict[str, object] = dict(aop.statistics().as_dict())
        doc["middleware"] = mw.statistics().as_dict()
        doc["top_routes"] = [r.as_dict() for r in mw.route_usage(top=_TOP_ROUTES)]
        return _json(doc, headers=_pid())

    return [
        Route("/bytes/{n}", pooled_bytes),
        Route("/upload", upload, methods=["POST"]),
        Route("/stats", stats),
    ]


def _metrics_route(aop: electron.ArenaOfPools, mw: ElectronMiddleware) -> list[Route]:
    try:
        import prometheus_client

        from electron import metrics
    except ImportError:  # the metrics extra is not installed: serve without /metrics
        print("prometheus-client is not installed: no GET /metrics", file=sys.stderr)
        return []
    registry = prometheus_client.CollectorRegistry()
    prometheus_client.ProcessCollector(registry=registry)
    exported = metrics.Metrics(aop, mw, registry=registry)

    async def serve_metrics(request: Request) -> Response:
        body = exported.exposition()
        return Response(body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})

    return [Route("/metrics", serve_metrics)]


# -- baseline: plain allocation ------------------------------------------------------------


class _ByteArrayResponse(Response):
    """A response whose body is the bytearray the handler filled (no copy, as aiohttp's)."""

    def render(self, content: Any) -> bytes | memoryview:
        return content  # type: ignore[no-any-return]


def _plain_routes(upload_limit: int) -> list[Route]:
    async def plain_bytes(request: Request) -> Response:
        try:
            n, seed = _bytes_args(request)
        except _Refused as exc:
            return _text(400, str(exc))
        return _plain_bytes(n, seed)

    async def upload(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > upload_limit:
            return _text(413, f"413: the request body is larger than {upload_limit} bytes")
        parts = []
        size = 0
        async for part in request.stream():
            size += len(part)
            if size > upload_limit:
                return _text(413, f"413: the request body is larger than {upload_limit} bytes")
            parts.append(part)
        body = b"".join(parts)
        return _json({"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})

    fields = dataclasses.fields(electron.ArenaOfPoolsStatistics)
    zeros: dict[str, object] = {f.name: 0 for f in fields}
    zeros["middleware"] = {
        f.name: 0 for f in dataclasses.fields(electron.asgi.MiddlewareStatistics)
    }
    zeros["top_routes"] = []

    async def stats(request: Request) -> Response:
        return _json(zeros, headers=_pid())

    return [
        Route("/bytes/{n}", plain_bytes),
        Route("/upload", upload, methods=["POST"]),
        Route("/stats", stats),
    ]


def make_app(
    aop: electron.ArenaOfPools | None,
    *,
    upload_limit: int = shared.DEFAULT_UPLOAD_LIMIT,
    acquire_timeout: float = 1.0,
    metrics: bool = True,
) -> Starlette:
    """The example app: with electron's middleware over ``aop``, or plain with ``None``."""
    routes = [Route("/", hello), Route("/json", json_doc), Route("/render", render)]
    if aop is None:
        return Starlette(routes=routes + _plain_routes(upload_limit))
    app = Starlette(routes=routes)
    mw = setup(
        app,
        aop,
        acquire_timeout=acquire_timeout,
        body_limit=upload_limit,
        exclude=("/stats", "/metrics"),
    )
    app.router.routes += _electron_routes(aop, mw)
    if metrics:
        app.router.routes += _metrics_route(aop, mw)
    return app


# -- running it ----------------------------------------------------------------------------


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python examples/asgi_server.py", description=__doc__.split("\n")[0]
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one (default 8080)")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the port (default 1)")
    p.add_argument(
        "--server",
        choices=("uvicorn", "hypercorn", "granian"),
        default="uvicorn",
        help="the ASGI server (default uvicorn)",
    )
    p.add_argument(
        "--http",
        choices=("httptools", "h11"),
        default="httptools",
        help="uvicorn's HTTP protocol (default httptools)",
    )
    p.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="event loop (default: uvloop when installed)",
    )
    p.add_argument(
        "--no-electron", action="store_true", help="plain allocation: the load-test baseline"
    )
    p.add_argument(
        "--upload-limit",
        type=int,
        default=shared.DEFAULT_UPLOAD_LIMIT,
        help=f"largest POST /upload body in bytes (default {shared.DEFAULT_UPLOAD_LIMIT})",
    )
    p.add_argument(
        "--arena-size", type=shared._arena_size, default=64 << 10, help="bytes per arena"
    )
    p.add_argument("--pool-size", type=int, default=64, help="idle arenas kept (default 64)")
    p.add_argument("--trim-interval", type=float, default=30.0, help="seconds between trims")
    p.add_argument("--max-arenas", type=int, default=None, help="arenas lent at once (budget)")
    p.add_argument("--max-bytes", type=int, default=None, help="bytes lent at once (budget)")
    p.add_argument(
        "--acquire-timeout",
        type=float,
        default=1.0,
        help="seconds a request waits for the budget before 503 (default 1)",
    )
    p.add_argument("--no-metrics", action="store_true", help="do not serve GET /metrics")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be >= 1")
    if not 0 <= args.port <= 65535:
        p.error("--port must be in 0..65535")
    return args


def _make_app(args: argparse.Namespace) -> Starlette:
    aop = None if args.no_electron else shared._make_aop(args)
    return make_app(
        aop,
        upload_limit=args.upload_limit,
        acquire_timeout=args.acquire_timeout,
        metrics=not args.no_metrics,
    )


def app_factory() -> Starlette:
    """The app for any ASGI server (``examples.asgi_server:app_factory``, a factory), options
    from the command line in ``$ELECTRON_ASGI_ARGS`` (e.g. ``"--max-bytes 268435456"``)."""
    return _make_app(_parse(shlex.split(os.environ.get(_ARGS_ENV, ""))))


def _listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _use_uvloop(loop: str) -> bool:
    if loop == "asyncio":
        return False
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if loop == "uvloop":
            raise
        return False
    return True


async def _serve_uvicorn(
    args: argparse.Namespace, sock: socket.socket, stop: asyncio.Event
) -> None:
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the example handles SIGTERM and SIGINT itself

    config = uvicorn.Config(
        _make_app(args),
        http=args.http,
        loop="none",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )
    server = Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await stop.wait()
    server.should_exit = True
    await task


async def _serve_hypercorn(
    args: argparse.Namespace, sock: socket.socket, stop: asyncio.Event
) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    await serve(_make_app(args), config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


def _run_one(args: argparse.Namespace, sock: socket.socket, ready: Any) -> None:
    """Serve on ``sock`` until SIGTERM or SIGINT (one process)."""

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        serve = _serve_uvicorn if args.server == "uvicorn" else _serve_hypercorn
        task = asyncio.create_task(serve(args, sock, stop))
        await _accepting(sock.getsockname()[:2], task)
        ready()
        await task

    if _use_uvloop(args.loop):
        import uvloop

        uvloop.run(run())
    else:
        asyncio.run(run())


async def _accepting(address: tuple[str, int], task: asyncio.Task[None]) -> None:
    """Return once the server answers HTTP on ``address`` (its app started)."""
    host, port = address
    while True:
        if task.done():
            task.result()  # its error
            raise RuntimeError("the server stopped before it served")
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            await writer.drain()
            line = await reader.readline()
            writer.close()
            if line.startswith(b"HTTP/1."):
                return
        await asyncio.sleep(0.02)


def _announce(host: str, port: int) -> None:
    print(shared._LISTENING.format(host=shared._url_host(host), port=port), flush=True)


def _serve_worker(args: argparse.Namespace, ready: Callable[[str, int], None]) -> None:
    """``--workers N``: one of the N processes, on its own SO_REUSEPORT socket."""
    sock = _listen(args.host, args.port, reuse_port=True)
    _run_one(args, sock, lambda: ready(*sock.getsockname()[:2]))


def _run_granian(args: argparse.Namespace, argv: list[str]) -> int:
    """granian manages its own processes: run it, announce once it serves, pass signals on."""
    port = args.port
    if port == 0:
        with socket.socket() as probe:  # granian takes no port 0: pick a free one
            probe.bind((args.host, 0))
            port = probe.getsockname()[1]
    loop = "uvloop" if _use_uvloop(args.loop) else "asyncio"
    command = [
        sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--no-ws",
        "--host", args.host, "--port", str(port), "--workers", str(args.workers),
        "--loop", loop, "--log-level", "warning", "examples.asgi_server:app_factory",
    ]  # fmt: skip
    env = dict(os.environ, **{_ARGS_ENV: shlex.join(argv)})
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    proc = subprocess.Popen(command, env=env)

    def stop(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((args.host, port), 1):
            _announce(args.host, port)
            break
        time.sleep(0.05)
    return proc.wait()


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGTERM or SIGINT; return the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    args = _parse(argv)
    if args.server == "granian":
        return _run_granian(args, argv)
    if args.workers > 1:  # examples/server.py's supervisor, with this example's workers
        return int(shared._supervise(args, functools.partial(_serve_worker, args)))
    try:
        sock = _listen(args.host, args.port)
    except OSError as exc:
        print(f"port {args.port} is in use: {exc}", file=sys.stderr)
        return 1
    _run_one(args, sock, lambda: _announce(*sock.getsockname()[:2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
