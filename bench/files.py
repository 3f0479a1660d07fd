"""One large file through the service: uploaded with a report, downloaded by both sides.

A report with one file of random bytes goes to `POST /api/v1/public/{slug}/reports` as
multipart; the designated person then downloads it (`GET /api/v1/cases/{id}/files/{file}` with
`X-Access-Reason`) and so does the whistleblower (`GET /api/v1/public/reports/self/files/{file}`
with `X-Tracking-Code`). Prints MB/s each way and how far the server's resident memory grew above
its level before the upload (VmRSS sampled every 20 ms; VmHWM, the kernel's peak, too).

Run: .venv/bin/python bench/files.py [--megabytes 200]
"""

import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import common
import httpx

MB = 1024 * 1024


class MemoryWatch:
    """The peak VmRSS of a process while the watch is running."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, common.memory_kib(self.pid)["VmRSS"])
            time.sleep(0.02)

    @contextmanager
    def running(self) -> Iterator["MemoryWatch"]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


def random_file(directory: str, megabytes: int) -> tuple[Path, str]:
    """A file of random bytes (incompressible, no known format to strip) and its SHA-256."""
    path = Path(directory) / "evidence.bin"
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for _ in range(megabytes):
            block = os.urandom(MB)
            digest.update(block)
            handle.write(block)
    return path, digest.hexdigest()


def download(client: httpx.Client, url: str, headers: dict[str, str]) -> tuple[float, str]:
    """Seconds to stream the body, and the SHA-256 of what arrived."""
    digest = hashlib.sha256()
    start = time.perf_counter()
    with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, response.read()
        for piece in response.iter_bytes(MB):
            digest.update(piece)
    return time.perf_counter() - start, digest.hexdigest()


def line(name: str, megabytes: int, seconds: float) -> str:
    return f"{name:<40} {seconds:6.2f} s  {megabytes / seconds:7.1f} MB/s"


def main() -> None:
    parser = common.arguments(__doc__ or "")
    parser.add_argument("--megabytes", type=int, default=200, help="size of the file (MiB)")
    args = parser.parse_args()
    limit = str((args.megabytes + 1) * MB)

    print(f"machine: {common.machine()}; server, database and client share it")
    with (
        tempfile.TemporaryDirectory(prefix="pistalka-bench-file-") as directory,
        common.pistalka(args.database_url, max_file_bytes=limit) as server,
        httpx.Client(base_url=server.url, timeout=600) as client,
    ):
        path, sent_digest = random_file(directory, args.megabytes)
        slug = common.set_up_organisation(server, args.database_url)
        # Logged in first: Argon2id takes 64 MiB of its own, which is not the files' doing.
        assert client.post("/api/v1/auth/login", json=common.login_credentials()).is_success
        baseline = common.memory_kib(server.pid)["VmRSS"]
        with MemoryWatch(server.pid).running() as upload_watch:
            fields = {"description": "The file shows the invoices.", "anonymous": "true"}
            start = time.perf_counter()
            with path.open("rb") as handle:
                files = {"files": ("evidence.bin", handle, "application/octet-stream")}
                response = client.post(f"/api/v1/public/{slug}/reports", data=fields, files=files)
            upload_seconds = time.perf_counter() - start
        assert response.status_code == 201, response.text
        code = response.json()["tracking_code"]

        [case] = client.get("/api/v1/cases").json()["items"]
        reason = {"X-Access-Reason": "benchmark"}
        [attachment] = client.get(f"/api/v1/cases/{case['id']}", headers=reason).json()[
            "attachments"
        ]
        with MemoryWatch(server.pid).running() as download_watch:
            url = f"/api/v1/cases/{case['id']}/files/{attachment['id']}"
            member_seconds, member_digest = download(client, url, reason)
            url = f"/api/v1/public/reports/self/files/{attachment['id']}"
            own_seconds, own_digest = download(client, url, {"X-Tracking-Code": code})

    assert member_digest == sent_digest, "the designated person got another file"
    assert own_digest == sent_digest, "the whistleblower got another file"
    print(line(f"upload {args.megabytes} MB with a report", args.megabytes, upload_seconds))
    print(line("download, designated person", args.megabytes, member_seconds))
    print(line("download, whistleblower", args.megabytes, own_seconds))
    print(f"server VmRSS before the upload: {baseline / 1024:.0f} MB")
    for name, watch in (("upload", upload_watch), ("the two downloads", download_watch)):
        print(f"server VmRSS growth during {name}: {(watch.peak_kib - baseline) / 1024:.0f} MB")


if __name__ == "__main__":
    main()
