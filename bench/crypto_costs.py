"""Costs of the key hierarchy and of a login, with production parameters.

Run: .venv/bin/python bench/crypto_costs.py   (prints one line per figure)
"""

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from app import crypto, migrate
from app.config import Settings
from app.main import create_app


def timed(function: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def report(name: str, samples: list[float]) -> None:
    print(f"{name:<44} median {statistics.median(samples):8.3f} ms  min {min(samples):8.3f} ms")


def primitives() -> None:
    params = crypto.Argon2Params()
    salt = crypto.new_salt()
    report(
        f"Argon2id {params.encode()}",
        timed(lambda: crypto.derive_password_keys("correct horse battery", salt, params), 5),
    )
    pair = crypto.generate_keypair()
    report_key = crypto.random_key()
    sealed = crypto.seal_to(pair.public, report_key, b"report")
    report("HPKE key pair (ML-KEM-768 + X25519)", timed(crypto.generate_keypair, 50))
    report(
        "HPKE seal a report key", timed(lambda: crypto.seal_to(pair.public, report_key, b"r"), 200)
    )
    report(
        "HPKE open a report key",
        timed(lambda: crypto.open_with(pair.private, sealed, b"report"), 200),
    )
    print(f"{'HPKE ciphertext of a 32-byte key':<44} {len(sealed)} bytes")
    blob = b"x" * 5000
    report("AES-256-GCM seal 5 KB", timed(lambda: crypto.seal(report_key, blob, b"f"), 1000))


async def logins(concurrent: int = 8) -> None:
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(data_dir=Path(directory), public_url="http://bench")
        migrate.upgrade(settings)
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            body = {
                "slug": "bench-org",
                "name": "Bench s.r.o.",
                "ico": "26843820",
                "address": "Praha",
                "email": "bench@example.cz",
                "password": "correct horse battery",
            }
            start = time.perf_counter()
            assert (await client.post("/api/v1/organisations", json=body)).status_code == 201
            print(
                f"{'registration (API, SQLite)':<44} {1000 * (time.perf_counter() - start):8.1f} ms"
            )
            credentials = {"email": body["email"], "password": body["password"]}

            async def one_login() -> float:
                start = time.perf_counter()
                response = await client.post("/api/v1/auth/login", json=credentials)
                assert response.status_code == 200
                return (time.perf_counter() - start) * 1000

            report("login (API, SQLite), one at a time", [await one_login() for _ in range(5)])

            async def health_latencies(stop: asyncio.Event) -> list[float]:
                samples = []
                while not stop.is_set():
                    start = time.perf_counter()
                    await client.get("/healthz")
                    samples.append((time.perf_counter() - start) * 1000)
                    await asyncio.sleep(0.01)
                return samples

            stop = asyncio.Event()
            probe = asyncio.create_task(health_latencies(stop))
            start = time.perf_counter()
            await asyncio.gather(*(one_login() for _ in range(concurrent)))
            elapsed = (time.perf_counter() - start) * 1000
            stop.set()
            samples = await probe
            print(f"{concurrent} concurrent logins took {elapsed:.0f} ms in all")
            report(f"/healthz while {concurrent} logins run", samples)
        await app.state.engine.dispose()


if __name__ == "__main__":
    primitives()
    asyncio.run(logins())
