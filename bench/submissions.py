"""Throughput and latency of report submissions, against the ceiling of the same stack.

Concurrent clients POST 5 KB reports to `POST /api/v1/public/{slug}/reports` of `pistalka serve`
for a while, then do the same to bench/ceiling_app.py served the same way; the figures of both,
the CPU time each spends per report, and our share of the ceiling are printed.

Run: .venv/bin/python bench/submissions.py [--clients 32] [--seconds 30] [--workers 1]
"""

import argparse
import json
import resource
import subprocess

import ceiling_app
import common


def client_cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # client processes, once joined
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def profile(pid: int, seconds: float, output: str) -> subprocess.Popen[bytes]:
    """py-spy samples the server (all its processes) while the load runs."""
    command = [str(common.BIN / "py-spy"), "record", "--pid", str(pid), "--subprocesses"]
    command += ["--duration", str(int(seconds)), "--format", "raw", "--output", output]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603


def measure(
    name: str,
    server: common.Server,
    urls: list[str],
    body: dict[str, object],
    args: argparse.Namespace,
    profile_to: str | None = None,
) -> common.LoadResult:
    """Load the server and print throughput, latency and CPU time per report."""
    spy = profile(server.pid, args.seconds + 2, profile_to) if profile_to else None
    server_before, client_before = common.cpu_seconds(server.pid), client_cpu()
    result = common.load(urls, body, args.clients, args.seconds, args.client_processes)
    server_ms = 1000 * (common.cpu_seconds(server.pid) - server_before) / max(result.answered, 1)
    client_ms = 1000 * (client_cpu() - client_before) / max(result.answered, 1)
    if spy is not None:
        spy.wait()
    print(f"{name}: {result.throughput:.0f} reports/s")
    print(common.latency_line(f"  {name} latency", result.latencies_ms))
    print(
        f"  CPU per report: server {server_ms:.2f} ms (a core's worth: {1000 / server_ms:.0f} "
        f"reports/s), load clients {client_ms:.2f} ms"
    )
    if result.errors:
        print(f"  failed requests: {result.errors}")
    return result


def measure_pistalka(args: argparse.Namespace, body: dict[str, object]) -> common.LoadResult:
    with common.pistalka(args.database_url, workers=args.workers) as server:
        urls = []
        for n in range(args.organisations):
            slug = common.set_up_organisation(server, args.database_url, f"bench-org-{n}")
            urls.append(f"{server.url}/api/v1/public/{slug}/reports")
        return measure("pistalka", server, urls, body, args, args.profile)


def measure_ceiling(args: argparse.Namespace, body: dict[str, object]) -> common.LoadResult:
    ceiling_app.prepare(args.database_url)
    port = common.free_port()
    command = [str(common.BIN / "uvicorn"), "--app-dir", "bench", "ceiling_app:create_app"]
    command += ["--factory", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--no-access-log", "--no-proxy-headers", "--log-level", "warning"]
    if args.workers > 1:
        command += ["--workers", str(args.workers)]
    env = {"CEILING_DATABASE_URL": args.database_url, "PATH": str(common.BIN)}
    server = common.Server(command, env, port)
    try:
        server.wait_ready()
        return measure("ceiling", server, [f"{server.url}/reports"], body, args)
    finally:
        server.stop()


def main() -> None:
    parser = common.arguments(__doc__ or "")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=30, help="measured seconds per server")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument(
        "--organisations",
        type=int,
        default=8,
        help="organisations the clients report to, round robin (one organisation's reports "
        "are numbered one after another, under a lock)",
    )
    parser.add_argument(
        "--client-processes", type=int, default=1, help="processes the clients are spread over"
    )
    parser.add_argument(
        "--profile", help="write py-spy's raw stacks of our server here (pip install py-spy)"
    )
    parser.add_argument("--no-ceiling", action="store_true", help="measure our server only")
    args = parser.parse_args()
    body = common.report_body(5000)

    print(f"machine: {common.machine()}; server, database and clients share it")
    print(
        f"{args.clients} clients in {args.client_processes} process(es) to "
        f"{args.organisations} organisation(s), {args.workers} server process(es), "
        f"{args.seconds:g} s each, report JSON {len(json.dumps(body))} bytes"
    )
    ours = measure_pistalka(args, body)
    if args.no_ceiling:
        return
    ceiling = measure_ceiling(args, body)
    print(f"pistalka / ceiling: {100 * ours.throughput / ceiling.throughput:.0f} %")


if __name__ == "__main__":
    main()
