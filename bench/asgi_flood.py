"""The ASGI example server's memory under a flood, against its ``--no-electron`` baseline.

    python -m bench.asgi_flood [--server uvicorn|hypercorn|...] [--clients 64] [--size 4194304]
        [--max-bytes 67108864] [--scenario download|stalled|upload]

For each scenario, a fresh server process (``examples/asgi_server.py``, one process, uvloop)
with ``--no-electron`` and with ``--max-bytes`` (trim interval 2 s) takes ``--clients``
concurrent requests at once; the server's RSS is sampled every 10 ms:

- ``download``: ``GET /bytes/SIZE`` from clients that read as fast as they can;
- ``stalled``: the same from clients with a 4 KiB receive buffer that read nothing for 2 s,
  then everything (a slow-reader flood: what the server holds for them);
- ``upload``: ``POST /upload`` of SIZE bytes.

Printed per run: RSS before, the peak (and its growth), after the flood (1 s later) and after
two trim intervals, and the statuses the clients got.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psutil

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "asgi_server.py"
MiB = 1 << 20
STALL = 2.0
TRIM = 2.0


def _start(server: list[str], args: list[str]) -> tuple[subprocess.Popen[str], str, int]:
    command = [sys.executable, str(EXAMPLE), "--port", "0", "--no-metrics", *server, *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    match = re.search(r"http://([^:/]+):(\d+)", proc.stdout.readline())
    if match is None:
        proc.kill()
        raise RuntimeError("the server did not start")
    return proc, match.group(1), int(match.group(2))


class _Peak:
    """Samples a process's RSS every 10 ms in a thread while running."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return int(self.proc.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.01)

    def __enter__(self) -> _Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


async def _exchange(
    host: str, port: int, head: bytes, body: bytes = b"", *, stall: float = 0.0
) -> int:
    """One request on its own connection; the response's status (0: the connection broke)."""
    sock = socket.socket()
    if stall:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096 if stall else 1 << 16)
    try:
        writer.write(head + body)
        await writer.drain()
        if stall:
            await asyncio.sleep(stall)
        status_line = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        return int(status_line.split()[1])
    except (ConnectionError, asyncio.IncompleteReadError, IndexError):
        return 0
    finally:
        writer.close()


async def _flood(host: str, port: int, scenario: str, clients: int, size: int) -> Counter[int]:
    if scenario == "upload":
        head = (
            f"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        body = bytes(size)
    else:
        head = f"GET /bytes/{size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        body = b""
    stall = STALL if scenario == "stalled" else 0.0
    statuses = await asyncio.gather(
        *(_exchange(host, port, head, body, stall=stall) for _ in range(clients))
    )
    return Counter(statuses)


def run(server: list[str], args: list[str], scenario: str, clients: int, size: int) -> str:
    proc, host, port = _start(server, ["--trim-interval", str(TRIM), *args])
    try:
        warm = f"GET /bytes/{1 * MiB} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        asyncio.run(_flood_warm(host, port, warm.encode()))
        time.sleep(0.5)
        with _Peak(proc.pid) as peak:
            before = peak.rss()
            statuses = asyncio.run(_flood(host, port, scenario, clients, size))
        time.sleep(1.0)
        after = peak.rss()
        time.sleep(2 * TRIM + 0.5)
        trimmed = peak.rss()
    finally:
        proc.terminate()
        proc.wait()

    def mib(n: int) -> str:
        return f"{n / MiB:6.1f}"

    codes = " ".join(f"{code}x{count}" for code, count in sorted(statuses.items()))
    return (
        f"before {mib(before)}  peak {mib(peak.peak)} (+{mib(peak.peak - before)})  "
        f"after {mib(after)}  after trims {mib(trimmed)}  MiB  statuses {codes}"
    )


async def _flood_warm(host: str, port: int, head: bytes) -> None:
    await asyncio.gather(*(_exchange(host, port, head) for _ in range(4)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.asgi_flood", description=__doc__)
    p.add_argument("--server", default="uvicorn", help="uvicorn, uvicorn-h11 or hypercorn")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--size", type=int, default=4 * MiB)
    p.add_argument("--max-bytes", type=int, default=64 * MiB)
    p.add_argument("--scenario", action="append", choices=("download", "stalled", "upload"))
    a = p.parse_args(argv)
    server = {
        "uvicorn": ["--server", "uvicorn", "--loop", "uvloop"],
        "uvicorn-h11": ["--server", "uvicorn", "--http", "h11", "--loop", "uvloop"],
        "hypercorn": ["--server", "hypercorn", "--loop", "uvloop"],
    }[a.server]
    modes = {"--no-electron": ["--no-electron"], "electron": ["--max-bytes", str(a.max_bytes)]}
    for scenario in a.scenario or ["download", "stalled", "upload"]:
        for label, args in modes.items():
            line = run(server, args, scenario, a.clients, a.size)
            print(f"{a.server:11} {scenario:8} {label:12} {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
