"""The server under test: start an example server, watch its memory, read ``/stats``.

``ServerProcess`` launches the example server on a free loopback port and waits for its
``listening on http://HOST:PORT`` line; ``RemoteServer`` wraps a server given by URL.
``Sampler`` records RSS (the server process plus its worker children) and CPU time in the
background; ``fetch_stats`` reads ``/stats``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

__all__ = (
    "ASGI_SCRIPT",
    "DEFAULT_SCRIPT",
    "EXAMPLES",
    "RemoteServer",
    "Sample",
    "Sampler",
    "ServerError",
    "ServerProcess",
    "fetch",
    "fetch_stats",
)

DEFAULT_SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "server.py"
ASGI_SCRIPT = DEFAULT_SCRIPT.with_name("asgi_server.py")
#: ``--server``: the example each name starts (same routes, contract and ``--no-electron``).
EXAMPLES = {"aiohttp": DEFAULT_SCRIPT, "asgi": ASGI_SCRIPT}
_LISTENING = re.compile(r"listening on (http://\S+)")


class ServerError(RuntimeError):
    """The server could not be started, or died while under test."""


@dataclass(slots=True)
class Sample:
    """One reading of a server's resident memory (bytes) and total CPU seconds."""

    t: float  # time.monotonic()
    rss: int
    cpu_s: float


class _Watched:
    """psutil view of a process tree (the server and its --workers children)."""

    def __init__(self, pid: int | None) -> None:
        self.proc: Any = psutil.Process(pid) if pid else None
        self._children: dict[int, Any] = {}
        self._dead_cpu = 0.0  # CPU of children that have exited, so the total never drops
        self._last_cpu: dict[int, float] = {}

    def sample(self) -> Sample | None:
        if self.proc is None:
            return None
        try:
            procs = [self.proc]
            procs += [self._children.setdefault(c.pid, c)
                      for c in self.proc.children(recursive=True)]
            rss = 0
            cpu = 0.0
            seen: set[int] = set()
            for p in procs:
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    rss += p.memory_info().rss
                    t = p.cpu_times()
                    c = float(t.user + t.system)
                    self._last_cpu[p.pid] = c
                    seen.add(p.pid)
                    cpu += c
            for pid in list(self._last_cpu):
                if pid not in seen:
                    self._dead_cpu += self._last_cpu.pop(pid)
            return Sample(time.monotonic(), rss, cpu + self._dead_cpu)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None


class ServerProcess:
    """An example server (``examples/server.py`` unless ``script`` says otherwise) run as a
    child process on ``127.0.0.1`` and a free port.

    ``start()`` returns the URL the server printed; ``stop()`` sends SIGINT, then SIGTERM,
    then SIGKILL to the process group it created, so ``--workers`` children go too. The
    server's stdout and stderr go to ``log_path``.
    """

    def __init__(
        self,
        label: str,
        *,
        electron: bool,
        workers: int = 1,
        script: Path = DEFAULT_SCRIPT,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.label = label
        self.electron = electron
        self.cmd = [sys.executable, str(script), "--host", "127.0.0.1", "--port", "0"]
        if workers != 1:
            self.cmd += ["--workers", str(workers)]
        if not electron:
            self.cmd.append("--no-electron")
        self.cmd += list(extra_args)
        self.script = script
        self.log_path = log_path
        self.url = ""
        self.popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._pump: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self, timeout: float = 30.0) -> str:
        """Launch the server and wait for its ``listening on`` line; returns its URL."""
        self.launch()
        return self.wait_listening(timeout)

    def launch(self) -> None:
        """Start the process without waiting (servers can then boot in parallel)."""
        if not self.script.exists():
            raise ServerError(f"{self.script} does not exist")
        self._log = open(self.log_path, "wb") if self.log_path else None  # noqa: SIM115
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.popen = subprocess.Popen(
            self.cmd,
            stdout=subprocess.PIPE,
            stderr=self._log if self._log else subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )

    def wait_listening(self, timeout: float = 30.0) -> str:
        """Wait for the ``listening on http://HOST:PORT`` line; returns the URL."""
        assert self.popen is not None
        assert self.popen.stdout is not None
        out = self.popen.stdout
        first = b""
        with selectors.DefaultSelector() as sel:
            sel.register(out, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout
            while b"\n" not in first:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.stop()
                    raise ServerError(f"{self.label}: no 'listening on' line in {timeout:.0f} s"
                                      f" ({' '.join(self.cmd)})")
                chunk = os.read(out.fileno(), 4096)
                if not chunk:
                    code = self.popen.wait(timeout=5)
                    self._close_log()
                    raise ServerError(f"{self.label}: server exited with {code} before listening;"
                                      f" see {self.log_path}")
                first += chunk
        line, _, rest = first.partition(b"\n")
        if self._log:
            self._log.write(line + b"\n" + rest)
            self._log.flush()
        m = _LISTENING.search(line.decode(errors="replace"))
        if not m:
            self.stop()
            raise ServerError(f"{self.label}: unexpected first line {line!r}")
        self.url = m.group(1).rstrip("/")
        self._pump = threading.Thread(target=self._drain, args=(out,), daemon=True)
        self._pump.start()
        return self.url

    def _drain(self, out: IO[bytes]) -> None:
        # Keep reading stdout so a chatty server never blocks on a full pipe.
        while chunk := os.read(out.fileno(), 65536):
            if self._log and not self._log.closed:
                with contextlib.suppress(ValueError, OSError):
                    self._log.write(chunk)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def interrupt(self) -> None:
        """Ask the server to stop (SIGINT to its process group) without waiting."""
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGINT)

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the server (and its children); returns its exit code."""
        p = self.popen
        if p is None:
            return None
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if p.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=timeout / 2 if sig != signal.SIGKILL else timeout)
        if self._pump:
            self._pump.join(timeout=2)
        if p.stdout is not None:
            p.stdout.close()
        self._close_log()
        return p.returncode

    def _close_log(self) -> None:
        if self._log:
            self._log.close()

    def log_text(self) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return ""


@dataclass(slots=True)
class RemoteServer:
    """A server started by someone else (``--url``); RSS is watched only if ``pid`` is given."""

    label: str
    url: str
    pid: int | None = None
    electron: bool = True
    cmd: list[str] = field(default_factory=list)

    def alive(self) -> bool:
        return True

    def log_text(self) -> str:
        return ""


class Sampler:
    """Samples every watched server's RSS and CPU every ``interval`` seconds in a thread."""

    def __init__(self, pids: dict[str, int | None], interval: float = 0.25) -> None:
        self.interval = interval
        self.samples: dict[str, list[Sample]] = {label: [] for label in pids}
        self._watched = {label: _Watched(pid) for label, pid in pids.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._lock = threading.Lock()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample_now()
            self._stop.wait(self.interval)

    def sample_now(self) -> dict[str, Sample]:
        """Take one sample of every server now (also called at round boundaries)."""
        got: dict[str, Sample] = {}
        for label, w in self._watched.items():
            s = w.sample()
            if s is not None:
                with self._lock:
                    self.samples[label].append(s)
                got[label] = s
        return got

    def between(self, label: str, t0: float, t1: float) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples[label] if t0 <= s.t <= t1]

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def fetch(url: str, timeout: float = 5.0) -> tuple[int, bytes, dict[str, str]]:
    """GET ``url`` on a fresh connection: ``(status, body, headers)``; status 0 if it failed."""
    req = urllib.request.Request(url, headers={"Connection": "close"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read()), dict(resp.headers.items())
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read(), dict(exc.headers.items())
    except (OSError, ValueError):
        return 0, b"", {}


def fetch_stats(url: str, workers: int = 1) -> list[dict[str, Any]]:
    """One ``/stats`` document per server worker (told apart by the ``X-Server-Pid`` header;
    with several workers, fresh connections land on them at random, so this asks up to 8
    times per worker). An empty list when the server has no usable ``/stats``."""
    docs: dict[str, dict[str, Any]] = {}
    for _ in range(max(1, workers * 8)):
        status, body, headers = fetch(url.rstrip("/") + "/stats")
        if status != 200:
            break
        try:
            doc = json.loads(body)
        except ValueError:
            break
        if not isinstance(doc, dict):
            break
        pid = headers.get("X-Server-Pid")
        if pid and pid.isdigit():
            doc["pid"] = int(pid)
        docs[pid or str(len(docs))] = doc
        if len(docs) >= workers:
            break
    return list(docs.values())
