"""The ASGI example server as a subprocess, under each server it supports.

Reuses the fault tests' ``Server`` (``tests/safety/test_server_faults.py``): fetch, /stats,
settle (nothing lent), check_healthy (every kind of request answered, each body its own).
"""

from __future__ import annotations

import importlib.util
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.safety.test_server_faults import (
    LEAK_REPORT,
    LINE,
    Server,
    connect,
    hang_up,
    logged_errors,
    read_head,
    request,
)

ASGI_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "asgi_server.py"

#: Each server configuration the ASGI example is tested under: its options, and the
#: module it needs.
SERVERS: dict[str, tuple[tuple[str, ...], str]] = {
    "uvicorn-uvloop": (("--server", "uvicorn", "--loop", "uvloop"), "uvloop"),
    "uvicorn-asyncio": (("--server", "uvicorn", "--loop", "asyncio"), "uvicorn"),
    "uvicorn-h11": (("--server", "uvicorn", "--http", "h11", "--loop", "uvloop"), "h11"),
    "hypercorn": (("--server", "hypercorn", "--loop", "uvloop"), "hypercorn"),
    "granian": (("--server", "granian"), "granian"),
}

#: What a server may log at a client's fault: a vanished client (uvicorn on uvloop writes the
#: response's start to a transport the client closed, and uvloop raises RuntimeError for it;
#: it does so without electron too), a malformed request. Application errors never.
CLIENT_NOISE = (
    "ConnectionResetError",
    "h11._util.RemoteProtocolError",
    "RuntimeError: unable to perform operation on <TCPTransport closed=True",
)


def server_params() -> list[object]:
    """One pytest param per server configuration, skipped where its module is missing."""
    params: list[object] = []
    for name, (_, module) in SERVERS.items():
        marks = []
        if importlib.util.find_spec(module) is None:
            marks.append(pytest.mark.skip(reason=f"{module} is not installed"))
        params.append(pytest.param(name, id=name, marks=marks))
    return params


@contextmanager
def asgi_server(tmp: Path, name: str, *args: str) -> Iterator[Server]:
    """Run examples/asgi_server.py under server ``name`` on port 0 with paranoid leak
    detection; stop it with SIGTERM and check its stderr for leak reports and tracebacks."""
    stderr_path = tmp / f"asgi-{name}-{time.monotonic_ns()}.stderr"
    env = dict(os.environ, ELECTRON_LEAK_DETECTION="paranoid", PYTHONUNBUFFERED="1")
    options = SERVERS[name][0]
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(ASGI_EXAMPLE), "--port", "0", *options, *args],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            start_new_session=True,  # granian's workers: signalled as one group at the end
        )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout=60):
                raise AssertionError("the server did not start within 60 s")
        line = proc.stdout.readline().decode()
        match = LINE.search(line)
        if match is None:
            raise AssertionError(f"unexpected first line {line!r}: {stderr_path.read_text()}")
        yield Server(proc, match.group(1), int(match.group(2)), stderr_path)
    finally:
        stop(proc)
    text = stderr_path.read_text(errors="replace")
    assert LEAK_REPORT not in text, f"the server reported a leak:\n{text}"
    unexpected = [e for e in logged_errors(text) if not e.startswith(CLIENT_NOISE)]
    assert not unexpected, f"the server logged errors: {unexpected}\n{text}"


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    if proc.stdout is not None:
        proc.stdout.close()


def declared_upload_status(srv: Server, length: int) -> int:
    """The status of ``POST /upload`` declaring ``length`` bytes, asked without sending the
    body: a refusal must come before it. (Sent with a body the server does not read, the
    answer may be lost to the reset a close with unread data causes, on any server.)"""
    sock = connect(srv)
    try:
        sock.sendall(request("POST", "/upload", {"Content-Length": str(length)}))
        return read_head(sock)[0]
    finally:
        hang_up(sock, "rst")
