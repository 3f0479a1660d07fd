"""What logins cost, and what they do to the whistleblowers' submissions meanwhile.

Prints the Argon2id cost of one password key with the production parameters, then the latency
of report submissions (`--clients` concurrent clients) alone and while `--logins` designated
persons log in over and over at the same time.

Run: .venv/bin/python bench/login.py [--clients 8] [--logins 8] [--seconds 15]
"""

import asyncio
import statistics
import time

import common
import httpx

from app import crypto


def argon2_cost() -> None:
    params = crypto.Argon2Params()
    salt = crypto.new_salt()
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        crypto.derive_password_keys("correct horse battery", salt, params)
        samples.append((time.perf_counter() - start) * 1000)
    print(
        f"Argon2id {params.encode()}: median {statistics.median(samples):.0f} ms, "
        f"min {min(samples):.0f} ms (one derivation, this process)"
    )


async def login_loops(url: str, accounts: list[dict[str, str]], stop: asyncio.Event) -> list[float]:
    """One loop per account logging in back to back until `stop`; the login latencies."""
    samples: list[float] = []

    async def loop(account: dict[str, str]) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            while not stop.is_set():
                start = time.perf_counter()
                response = await client.post("/api/v1/auth/login", json=account)
                assert response.status_code == 200, response.text
                samples.append((time.perf_counter() - start) * 1000)

    await asyncio.gather(*(loop(account) for account in accounts))
    return samples


async def with_logins(
    server: common.Server,
    urls: list[str],
    accounts: list[dict[str, str]],
    clients: int,
    seconds: float,
) -> tuple[common.LoadResult, list[float]]:
    """Submissions measured while the logins run; the logins begin with the warm-up."""
    stop = asyncio.Event()
    logins = asyncio.create_task(login_loops(server.url, accounts, stop))
    load = await common.post_load(urls, common.report_body(5000), clients, seconds)
    stop.set()
    return load, await logins


def main() -> None:
    parser = common.arguments(__doc__ or "")
    parser.add_argument("--clients", type=int, default=8, help="concurrent submitting clients")
    parser.add_argument("--logins", type=int, default=8, help="concurrent logins")
    parser.add_argument("--seconds", type=float, default=15, help="measured seconds per run")
    args = parser.parse_args()

    print(f"machine: {common.machine()}; server, database and clients share it")
    argon2_cost()
    with common.pistalka(args.database_url) as server:
        # One organisation, hence one account, per concurrent login.
        slugs = [
            common.set_up_organisation(server, args.database_url, f"bench-org-{n}")
            for n in range(args.logins)
        ]
        urls = [f"{server.url}/api/v1/public/{slug}/reports" for slug in slugs]
        accounts = [common.login_credentials(slug) for slug in slugs]
        body = common.report_body(5000)
        alone = asyncio.run(common.post_load(urls, body, args.clients, args.seconds))
        loaded, logins = asyncio.run(
            with_logins(server, urls, accounts, args.clients, args.seconds)
        )
    print(common.latency_line(f"submissions, {args.clients} clients", alone.latencies_ms))
    print(common.latency_line(f"  same, with {args.logins} logins running", loaded.latencies_ms))
    print(common.latency_line(f"  the {args.logins} concurrent logins", logins))
    print(
        f"submissions/s: {alone.throughput:.0f} alone, {loaded.throughput:.0f} with logins; "
        f"logins/s: {len(logins) / args.seconds:.1f}"
    )


if __name__ == "__main__":
    main()
