"""`pistalka serve` as a real operating-system process, so tests can SIGKILL and restart it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.browser import free_port
from tests.conftest import FAST_ARGON2, TEST_SECRET

PISTALKA = Path(sys.executable).parent / "pistalka"
# The checkout the tests run from, imported by the served process too (not the installed one).
SOURCE = Path(__file__).resolve().parent.parent


class ServedApp:
    """One `pistalka serve --no-worker` process on a free port of 127.0.0.1."""

    def __init__(self, data_dir: Path, database_url: str, **settings: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log = data_dir / "served.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PISTALKA_")}
        values: dict[str, object] = {
            "data_dir": data_dir,
            "database_url": database_url,
            "public_url": self.url,
            "secret_key": TEST_SECRET,
            "smtp_port": 9,
            # Every client of the test comes from 127.0.0.1: the limits are tested elsewhere.
            "submissions_per_hour": 1_000_000,
            "lookups_per_10_minutes": 1_000_000,
            "form_min_fill_seconds": 0,
            **FAST_ARGON2,
            **settings,
        }
        env.update({f"PISTALKA_{k.upper()}": str(v) for k, v in values.items()})
        env["PYTHONPATH"] = str(SOURCE)
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> "ServedApp":
        data_dir = self.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own command
                [str(PISTALKA), "serve", "--no-worker", "--port", str(self.port)],
                cwd=data_dir,  # no stray .env file is read
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no rollback, no flush runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.process = None
