"""Throughput and latency of report submissions, against the ceiling of the same stack.

Concurrent clients POST 5 KB reports to `POST /api/v1/public/{slug}/reports` of `pistalka serve`
for a while, then do the same to bench/ceiling_app.py served the same way; the figures of both
and our share of the ceiling are printed.

Run: .venv/bin/python bench/submissions.py [--clients 32] [--seconds 30] [--workers 1]
"""

import argparse
import json
import subprocess
from pathlib import Path

import ceiling_app
import common


def print_result(name: str, result: common.LoadResult) -> None:
    print(f"{name}: {result.throughput:.0f} reports/s")
    print(common.latency_line(f"  {name} latency", result.latencies_ms))
    if result.errors:
        print(f"  failed requests: {result.errors}")


def profile(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    """py-spy samples the server (all its processes) while the load runs."""
    command = [str(common.BIN / "py-spy"), "record", "--pid", str(pid), "--subprocesses"]
    command += ["--duration", str(int(seconds)), "--format", "raw", "--output", str(output)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603


def measure_pistalka(args: argparse.Namespace, body: dict[str, object]) -> common.LoadResult:
    with common.pistalka(args.database_url, workers=args.workers) as server:
        slug = common.set_up_organisation(server, args.database_url)
        url = f"{server.url}/api/v1/public/{slug}/reports"
        spy = profile(server.pid, args.seconds + 2, Path(args.profile)) if args.profile else None
        result = common.load(url, body, args.clients, args.seconds, args.client_processes)
        if spy is not None:
            spy.wait()
    return result


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
        url = f"{server.url}/reports"
        return common.load(url, body, args.clients, args.seconds, args.client_processes)
    finally:
        server.stop()


def main() -> None:
    parser = common.arguments(__doc__ or "")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=30, help="measured seconds per server")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument(
        "--client-processes", type=int, default=1, help="processes the clients are spread over"
    )
    parser.add_argument("--profile", help="write a py-spy profile of our server to this file")
    parser.add_argument("--no-ceiling", action="store_true", help="measure our server only")
    args = parser.parse_args()
    body = common.report_body(5000)

    print(f"machine: {common.machine()}; server and clients share it")
    print(
        f"{args.clients} clients in {args.client_processes} process(es), {args.workers} server "
        f"process(es), {args.seconds:g} s each, report JSON {len(json.dumps(body))} bytes"
    )
    ours = measure_pistalka(args, body)
    print_result("pistalka", ours)
    if args.no_ceiling:
        return
    ceiling = measure_ceiling(args, body)
    print_result("ceiling", ceiling)
    print(f"pistalka / ceiling: {100 * ours.throughput / ceiling.throughput:.0f} %")


if __name__ == "__main__":
    main()
