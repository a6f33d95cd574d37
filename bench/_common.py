"""Shared benchmark plumbing: free ports, server subprocesses, and a small HTTP/1.1 load client.

The load client speaks keep-alive HTTP/1.1 over raw asyncio sockets (an ``asyncio.Protocol``),
so that on a small machine the client costs far less CPU than the server it measures. Every run
is bounded in request count and in wall time, and only ever connects to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

LOOPBACK = "127.0.0.1"


def log(msg: str) -> None:
    """Progress goes to stderr; stdout carries the JSON result only."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def machine_info() -> dict[str, Any]:
    import msgspec
    import uvicorn

    try:
        import httptools  # noqa: F401

        http_impl = "httptools"
    except ImportError:
        http_impl = "h11"
    try:
        import uvloop  # noqa: F401

        loop_impl = "uvloop"
    except ImportError:
        loop_impl = "asyncio"
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "uvicorn": uvicorn.__version__,
        "uvicorn_http": http_impl,
        "uvicorn_loop": loop_impl,
        "msgspec": msgspec.__version__,
    }


# --- servers ------------------------------------------------------------------------------


class Server:
    """A uvicorn server in a subprocess (one worker, loopback only), stopped by its own pid."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], port: int) -> None:
        self.name = name
        self.port = port
        self.proc = subprocess.Popen(
            list(argv), env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {self.name} exited with {self.proc.returncode}")
            try:
                socket.create_connection((LOOPBACK, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server {self.name} did not start within {timeout}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def http_get(port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> Any:
    """One plain GET (for checks, not for load): returns ``(status, body bytes)``."""
    import httpx

    r = httpx.get(f"http://{LOOPBACK}:{port}{path}", headers=headers or {}, timeout=timeout)
    return r.status_code, r.content


# --- CPU accounting ----------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (all its threads), from /proc; 0.0 where unavailable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def postgres_cpu(database: str) -> dict[int, float]:
    """CPU of each PostgreSQL backend serving one database (their process titles name it)."""
    out: dict[int, float] = {}
    marker = f" {database} ".encode()
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ")
        except OSError:
            continue
        if title.startswith(b"postgres: ") and marker in title:
            out[int(entry)] = process_cpu_seconds(int(entry))
    return out


def postgres_cpu_delta(before: dict[int, float], database: str) -> float:
    """CPU the database's backends used since ``before`` (backends that exited meanwhile are
    not counted, so this is a lower bound)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in postgres_cpu(database).items())


# --- the load client ---------------------------------------------------------------------


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, int]] | None = None
        self.need = -1
        self.status = 0
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionResetError("server closed the connection")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.lost)

    def data_received(self, data: bytes) -> None:
        try:
            self._parse(data)
        except Exception as exc:
            self.lost = exc
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(exc)

    def _parse(self, data: bytes) -> None:
        self.buf += data
        if self.need < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            self.status = int(head[0].split(" ", 2)[1])
            length = -1
            for line in head[1:]:
                name, _, value = line.partition(":")
                lname = name.strip().lower()
                if lname == "content-length":
                    length = int(value.strip())
                elif lname == "transfer-encoding":
                    raise RuntimeError("chunked responses are not supported by the bench client")
            if length < 0:
                raise RuntimeError("response without Content-Length")
            del self.buf[: end + 4]
            self.need = length
        if len(self.buf) >= self.need:
            size = self.need
            del self.buf[:size]
            self.need = -1
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result((self.status, size))

    async def request(self, raw: bytes) -> tuple[int, int]:
        if self.lost is not None:
            raise self.lost
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    bytes_per_response: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "statuses": self.statuses,
            "bytes_per_response": self.bytes_per_response,
        }


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


async def run_load(
    port: int,
    path: str,
    headers: dict[str, str],
    *,
    requests: int,
    warmup: int,
    concurrency: int,
    time_limit: float,
) -> LoadResult:
    """Warm up, then send ``requests`` GETs over ``concurrency`` keep-alive connections.

    Stops early (and says so through ``requests``) when ``time_limit`` seconds pass.
    """
    lines = [f"GET {path} HTTP/1.1", f"Host: {LOOPBACK}:{port}", "Accept: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    loop = asyncio.get_running_loop()
    conns: list[_Conn] = []
    for _ in range(concurrency):
        _, proto = await loop.create_connection(_Conn, LOOPBACK, port)
        conns.append(proto)

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    sizes: list[int] = []
    state = {"left": 0, "errors": 0}
    deadline = time.monotonic() + time_limit

    async def worker(conn: _Conn, record: bool) -> None:
        while state["left"] > 0 and time.monotonic() < deadline:
            state["left"] -= 1
            t0 = time.perf_counter()
            try:
                status, size = await conn.request(raw)
            except Exception:
                state["errors"] += 1
                return
            if record:
                latencies.append(time.perf_counter() - t0)
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if status != 200:
                    state["errors"] += 1
                elif not sizes:
                    sizes.append(size)

    state["left"] = warmup
    await asyncio.gather(*(worker(c, False) for c in conns))
    state["left"] = requests
    state["errors"] = 0
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c, True) for c in conns))
    seconds = time.perf_counter() - t0
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    done = len(latencies)
    latencies.sort()
    return LoadResult(
        requests=done,
        errors=state["errors"],
        seconds=seconds,
        rps=done / seconds if seconds > 0 else 0.0,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        statuses=statuses,
        bytes_per_response=sizes[0] if sizes else 0,
    )


def load_in_subprocess(
    script: str,
    port: int,
    path: str,
    headers: dict[str, str],
    *,
    requests: int,
    warmup: int,
    concurrency: int,
    time_limit: float,
) -> dict[str, Any]:
    """Drive load from a separate process (so the orchestrator's heap and GC stay out of it)."""
    import json

    argv = [
        sys.executable,
        script,
        "_load",
        "--port",
        str(port),
        "--path",
        path,
        "--requests",
        str(requests),
        "--warmup",
        str(warmup),
        "--concurrency",
        str(concurrency),
        "--time-limit",
        str(time_limit),
    ]
    for k, v in headers.items():
        argv += ["--header", f"{k}: {v}"]
    out = subprocess.run(
        argv, check=True, capture_output=True, text=True, timeout=time_limit + 60, stdin=subprocess.DEVNULL
    )
    if out.stderr:
        sys.stderr.write(out.stderr)
    return dict(json.loads(out.stdout))


# --- in-process calls (for profiling) ------------------------------------------------------


async def asgi_get(app: Any, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One GET straight into an ASGI app, without a server or an HTTP client in between."""
    route, _, query = path.partition("?")
    raw_headers = [(b"host", b"bench"), (b"accept", b"application/json")]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": route,
        "raw_path": route.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": raw_headers,
        "client": (LOOPBACK, 40000),
        "server": (LOOPBACK, 80),
        "state": {},
    }
    status = 0
    body = bytearray()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await app(scope, receive, send)
    return status, bytes(body)


async def cpu_per_call(fn: Any, n: int, batches: int = 5) -> float:
    """CPU microseconds per awaited call: the best of ``batches`` batches (robust to a busy machine)."""
    import gc

    for _ in range(min(100, n)):
        await fn()
    gc.collect()
    per = max(1, n // batches)
    best = float("inf")
    for _ in range(batches):
        t0 = time.process_time()
        for _ in range(per):
            await fn()
        best = min(best, (time.process_time() - t0) / per)
    return round(best * 1e6, 1)
