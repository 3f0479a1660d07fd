"""What the benchmarks share: a fresh database, the production server as a subprocess, figures.

Every benchmark starts `pistalka serve` itself on a free port, against an emptied PostgreSQL
database by default, and stops it at the end. Limits meant for humans (submissions per hour,
lookups, the form's minimum fill time) are raised so that the load is not refused.
"""

import argparse
import asyncio
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test_bench"
PASSWORD = "correct horse battery"  # noqa: S105 - a throwaway account of the benchmark
HIGH_LIMIT = str(10**9)


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="PostgreSQL database to use; its public schema is wiped at start",
    )
    return parser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def async_url(database_url: str) -> str:
    return database_url.replace("postgresql://", "postgresql+asyncpg://", 1)


async def sql(database_url: str, *statements: str, **params: object) -> None:
    """Run statements in one transaction."""
    engine = create_async_engine(async_url(database_url))
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.execute(text(statement), params)
    finally:
        await engine.dispose()


async def create_database(database_url: str) -> None:
    """Create the database unless it exists, connected to the server's `postgres` database."""
    url = make_url(async_url(database_url))
    engine = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            query = text("SELECT 1 FROM pg_database WHERE datname = :name")
            if await connection.scalar(query, {"name": url.database}) is None:
                await connection.execute(text(f'CREATE DATABASE "{url.database}"'))
    finally:
        await engine.dispose()


async def wipe_database(database_url: str) -> None:
    """An empty public schema; `pistalka serve` migrates it on start."""
    await create_database(database_url)
    await sql(database_url, "DROP SCHEMA public CASCADE", "CREATE SCHEMA public")


SECRET_KEY = "22" * 32


def server_env(database_url: str, data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PISTALKA_")}
    env.update(
        PISTALKA_DATABASE_URL=database_url,
        PISTALKA_DATA_DIR=str(data_dir),
        # Known to the benchmarks that write rows the server key authenticates (audit events).
        PISTALKA_SECRET_KEY=SECRET_KEY,
        PISTALKA_PUBLIC_URL=f"http://127.0.0.1:{port}",
        PISTALKA_SUBMISSIONS_PER_HOUR=HIGH_LIMIT,
        PISTALKA_LOOKUPS_PER_10_MINUTES=HIGH_LIMIT,
        PISTALKA_REGISTRATIONS_PER_HOUR=HIGH_LIMIT,
        PISTALKA_FORM_MIN_FILL_SECONDS="0",
        # An unreachable mail server: the outbox fills, nothing is sent (--no-worker anyway).
        PISTALKA_SMTP_PORT="1",
    )
    env.update({f"PISTALKA_{key.upper()}": value for key, value in extra.items()})
    return env


class Server:
    """A server subprocess on 127.0.0.1; `url` to reach it, `pid` to watch it."""

    def __init__(
        self, command: Sequence[str], env: dict[str, str], port: int, cwd: Path = ROOT
    ) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(  # noqa: S603 - our own command line
            list(command),
            cwd=cwd,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, path: str = "/healthz", timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.output()}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server did not answer in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


@contextmanager
def pistalka(
    database_url: str, workers: int = 1, wipe: bool = True, **settings: str
) -> Iterator[Server]:
    """The production command, `pistalka serve --no-worker`, on a fresh data directory."""
    if wipe:
        asyncio.run(wipe_database(database_url))
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pistalka-bench-") as data_dir:
        command = [str(BIN / "pistalka"), "serve", "--no-worker", "--host", "127.0.0.1"]
        command += ["--port", str(port)]
        if workers > 1:
            command += ["--workers", str(workers)]
        env = server_env(database_url, Path(data_dir), port, **settings)
        # Run from the data directory, so no stray .env file adds settings.
        server = Server(command, env, port, cwd=Path(data_dir))
        try:
            server.wait_ready()
            yield server
        finally:
            server.stop()


def organisation_body(slug: str = "bench-org") -> dict[str, Any]:
    return {
        "slug": slug,
        "name": "Bench s.r.o.",
        "ico": "26843820",
        "address": "Benchová 1, 110 00 Praha 1",
        "email": f"dp@{slug}.example.cz",
        "password": PASSWORD,
    }


def set_up_organisation(server: Server, database_url: str, slug: str = "bench-org") -> str:
    """Register an organisation through the API and mark its address verified; its slug."""
    body = organisation_body(slug)
    response = httpx.post(f"{server.url}/api/v1/organisations", json=body, timeout=60)
    assert response.status_code == 201, response.text
    # The verification link goes out by mail; the benchmark marks the address verified and the
    # designated persons published directly.
    asyncio.run(
        sql(
            database_url,
            "UPDATE organisation SET email_verified_at = now(),"
            " info_designated_persons = 'Jana Příslušná, 601 234 567' WHERE slug = :slug",
            slug=slug,
        )
    )
    return slug


def login_credentials(slug: str = "bench-org") -> dict[str, str]:
    body = organisation_body(slug)
    return {"email": body["email"], "password": body["password"]}


def report_body(size: int = 5000) -> dict[str, Any]:
    """A report of about `size` bytes of JSON, as the form would send it."""
    sentence = "The director approved invoices for work that was never done. "
    description = (sentence * (size // len(sentence) + 1))[: size - 200]
    return {
        "description": description,
        "category": "financial_services",
        "occurred_at": "March 2026",
        "location": "Head office",
        "relationship": "employee",
        "anonymous": True,
    }


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of the samples (fraction 0.5 for the median)."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def latency_line(name: str, samples_ms: Sequence[float]) -> str:
    return (
        f"{name:<40} p50 {percentile(samples_ms, 0.5):7.1f} ms  "
        f"p95 {percentile(samples_ms, 0.95):7.1f} ms  p99 {percentile(samples_ms, 0.99):7.1f} ms"
        f"  (n={len(samples_ms)})"
    )


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


def _stat(pid: int) -> list[str]:
    # The command name may hold spaces; the fields after it are plain.
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and of its live child processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    pids.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    total = 0.0
    for each in pids:
        try:
            fields = _stat(each)
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def machine() -> str:
    cpus = os.cpu_count()
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    return f"{cpus} CPUs ({model}), Python {sys.version.split()[0]}"


@dataclass
class LoadResult:
    """Latencies of the successful requests of a measured window, and the failures by cause."""

    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    # Every answer, warm-up included, to share out the CPU time of the whole run.
    answered: int = 0

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def merge(self, other: "LoadResult") -> None:
        self.latencies_ms += other.latencies_ms
        self.answered += other.answered
        for cause, count in other.errors.items():
            self.errors[cause] = self.errors.get(cause, 0) + count


async def post_load(
    urls: Sequence[str],
    body: dict[str, Any],
    clients: int,
    seconds: float,
    warmup: float = 2.0,
    first: int = 0,
) -> LoadResult:
    """`clients` loops posting `body` back to back, client k to urls[(first + k) % len(urls)];
    requests begun during warm-up do not count."""
    loop = asyncio.get_running_loop()
    measure_from = loop.time() + warmup
    end = measure_from + seconds
    result = LoadResult(seconds=seconds)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one_client(url: str) -> None:
            while (start := loop.time()) < end:
                try:
                    response = await client.post(url, json=body)
                    cause = "" if response.status_code == 201 else str(response.status_code)
                    result.answered += 1
                except httpx.HTTPError as exc:
                    cause = type(exc).__name__
                if start < measure_from:
                    continue
                if cause:
                    result.errors[cause] = result.errors.get(cause, 0) + 1
                else:
                    result.latencies_ms.append((loop.time() - start) * 1000)

        await asyncio.gather(*(one_client(urls[(first + k) % len(urls)]) for k in range(clients)))
    return result


def _load_in_process(
    args: tuple[Sequence[str], dict[str, Any], int, float, float, int],
) -> LoadResult:
    return asyncio.run(post_load(*args))


def load(
    urls: Sequence[str],
    body: dict[str, Any],
    clients: int,
    seconds: float,
    processes: int = 1,
    warmup: float = 2.0,
) -> LoadResult:
    """post_load, its clients spread over `processes` client processes when more than one."""
    if processes <= 1:
        return asyncio.run(post_load(urls, body, clients, seconds, warmup))
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    firsts = [sum(shares[:i]) for i in range(processes)]
    jobs = [(urls, body, n, seconds, warmup, k) for n, k in zip(shares, firsts, strict=True)]
    with multiprocessing.Pool(processes) as pool:
        parts = pool.map(_load_in_process, jobs)
    total = LoadResult(seconds=seconds)
    for part in parts:
        total.merge(part)
    return total
