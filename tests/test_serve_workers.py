"""`pistalka serve --workers N` runs N web processes that answer on one port."""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.served import PISTALKA, ServedApp


def _web_processes(pid: int) -> list[int]:
    """The child processes uvicorn spawned to serve (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(child)
        for child in children
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


@pytest.mark.parametrize("worker", [True, False], ids=["with-worker", "no-worker"])
def test_several_web_processes_serve_one_port(tmp_path: Path, worker: bool) -> None:
    served = ServedApp(tmp_path, f"sqlite:///{tmp_path / 'pistalka.db'}")
    command = [str(PISTALKA), "serve", "--workers", "2", "--port", str(served.port)]
    if not worker:
        command.append("--no-worker")
    with served.log.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own command
            command, cwd=tmp_path, env=served.env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, served.log.read_text()[-3000:]
            try:
                if httpx.get(f"{served.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, served.log.read_text()[-3000:]
            time.sleep(0.1)
        answers = [httpx.get(f"{served.url}/healthz", timeout=5).status_code for _ in range(10)]
        assert answers == [200] * 10
        assert len(_web_processes(process.pid)) == 2
    finally:
        process.terminate()
        process.wait(timeout=30)


def _gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaps counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_web_processes_exit_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    served = ServedApp(tmp_path, f"sqlite:///{tmp_path / 'pistalka.db'}")
    command = [str(PISTALKA), "serve", "--workers", "2", "--port", str(served.port)]
    with served.log.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own command
            command, cwd=tmp_path, env=served.env, stdout=log, stderr=subprocess.STDOUT
        )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 or not _answers(served.url):
            assert process.poll() is None, served.log.read_text()[-3000:]
            assert time.monotonic() < deadline, served.log.read_text()[-3000:]
            time.sleep(0.2)
            workers = _web_processes(process.pid)

        process.kill()  # the supervisor alone, as an OOM killer or `kill -9` would
        process.wait(timeout=30)
        deadline = time.monotonic() + 20
        while not all(_gone(pid) for pid in workers):
            assert time.monotonic() < deadline, "orphaned web processes still hold the port"
            time.sleep(0.1)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{served.url}/healthz", timeout=2)
    finally:
        for pid in [process.pid, *workers]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
