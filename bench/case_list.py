"""A designated person's case list and one case, for an organisation with many cases.

The cases are sealed as submit_report seals them (HPKE to the organisation key, the content
under a report key) and inserted in bulk, each with two events of a valid audit chain; then
`GET /api/v1/cases` and `GET /api/v1/cases/{id}` (with `X-Access-Reason`) are timed one after
another. Prints p50/p95 of each, the size of the list's answer and the plan of the query that
checks whether a reason was given.

Run: .venv/bin/python bench/case_list.py [--cases 20000] [--requests 50]
"""

import asyncio
import secrets
import time
import uuid
from datetime import datetime, timedelta

import common
import httpx
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from app import crypto
from app.config import Settings
from app.models import AuditEvent, Member, Organisation, Report
from app.models.base import utcnow
from app.schemas.report import ReportCreate
from app.services import audit, deadlines, reports

BATCH = 1000
# Whether a reason was given in this session (cases.read_reason_given), for the newest case.
REASON_QUERY = (
    "SELECT id FROM audit_event WHERE report_id = (SELECT id FROM report "
    "ORDER BY received_at DESC LIMIT 1) AND action = 'case.read' AND created_at >= now() LIMIT 1"
)


def case_rows(organisation_id: uuid.UUID, public_key: bytes, count: int) -> list[dict[str, object]]:
    """Report rows over the last four years, oldest first: most closed, recent ones open."""
    now = utcnow()
    content = ReportCreate(
        description=common.report_body(2000)["description"], category="other", anonymous=True
    ).model_dump_json()
    profile = deadlines.CZECH
    rows = []
    numbers: dict[int, int] = {}
    for n in range(count):
        received_at = now - timedelta(days=4 * 365 * (count - n) / count)
        received_on = deadlines.local_date(received_at)
        numbers[received_on.year] = numbers.get(received_on.year, 0) + 1
        age = (now - received_at).days
        status = "closed" if age > 90 else secrets.choice(["received", "acknowledged", "assessed"])
        report_id = uuid.uuid4()
        report_key = crypto.random_key()
        rows.append(
            {
                "id": report_id,
                "organisation_id": organisation_id,
                "channel": "web",
                "reference_year": received_on.year,
                "reference_number": numbers[received_on.year],
                "status": status,
                "received_at": received_at,
                "acknowledgement_due_on": deadlines.deadline(
                    received_on, profile.acknowledgement_days
                ).due_on,
                "assessment_due_on": deadlines.deadline(
                    received_on, profile.assessment_days
                ).due_on,
                "outcome": secrets.choice(["valid", "not_valid"]) if status == "closed" else None,
                "tracking_hash": secrets.token_bytes(32),
                "key_for_organisation": crypto.seal_to(
                    public_key, report_key, reports.aad(b"report-key", report_id)
                ),
                "key_for_whistleblower": crypto.seal(
                    crypto.random_key(), report_key, reports.aad(b"report-key", report_id)
                ),
                "sealed_content": crypto.seal(
                    report_key, content.encode(), reports.aad(b"report-content", report_id)
                ),
            }
        )
    return rows


def audit_rows(
    organisation_id: uuid.UUID, member_id: uuid.UUID, cases: list[dict[str, object]]
) -> list[dict[str, object]]:
    """Two events a case (read, acknowledged), chained as audit.record chains them."""
    key = audit.chain_key(Settings(secret_key=common.SECRET_KEY))
    rows = []
    prev_hash = audit.GENESIS_HASH
    seq = 0
    for case in cases:
        report_id, created_at = case["id"], case["received_at"]
        assert isinstance(report_id, uuid.UUID)
        assert isinstance(created_at, datetime)
        for action in ("case.read", "case.acknowledge"):
            seq += 1
            event_hash = audit.event_hash(
                key,
                organisation_id=organisation_id,
                seq=seq,
                created_at=created_at,
                member_id=member_id,
                report_id=report_id,
                action=action,
                detail="benchmark",
                prev_hash=prev_hash,
            )
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "organisation_id": organisation_id,
                    "seq": seq,
                    "created_at": created_at,
                    "member_id": member_id,
                    "report_id": report_id,
                    "action": action,
                    "detail": "benchmark",
                    "prev_hash": prev_hash,
                    "hash": event_hash,
                }
            )
            prev_hash = event_hash
    return rows


async def insert_cases(database_url: str, slug: str, count: int) -> uuid.UUID:
    """Insert `count` cases; the id of the newest."""
    engine = create_async_engine(common.async_url(database_url))
    try:
        async with engine.begin() as connection:
            organisation_id, public_key = (
                await connection.execute(
                    select(Organisation.id, Organisation.public_key).where(
                        Organisation.slug == slug
                    )
                )
            ).one()
            member_id = await connection.scalar(select(Member.id).limit(1))
            assert member_id is not None
            cases = case_rows(organisation_id, public_key, count)
            events = audit_rows(organisation_id, member_id, cases)
            for start in range(0, len(cases), BATCH):
                await connection.execute(insert(Report), cases[start : start + BATCH])
            for start in range(0, len(events), BATCH):
                await connection.execute(insert(AuditEvent), events[start : start + BATCH])
            await connection.execute(text("ANALYZE"))
        return cases[-1]["id"]  # type: ignore[return-value]
    finally:
        await engine.dispose()


async def explain(database_url: str, statement: str) -> str:
    engine = create_async_engine(common.async_url(database_url))
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + statement))
            return "\n".join("    " + row[0] for row in rows)
    finally:
        await engine.dispose()


def timed(client: httpx.Client, url: str, runs: int, headers: dict[str, str]) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url, headers=headers)
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.text
    return samples


def main() -> None:
    parser = common.arguments(__doc__ or "")
    parser.add_argument("--cases", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=50, help="timed requests of each kind")
    args = parser.parse_args()

    print(f"machine: {common.machine()}; server, database and client share it")
    with (
        common.pistalka(args.database_url) as server,
        httpx.Client(base_url=server.url, timeout=120) as client,
    ):
        slug = common.set_up_organisation(server, args.database_url)
        start = time.perf_counter()
        newest = asyncio.run(insert_cases(args.database_url, slug, args.cases))
        print(f"{args.cases} cases inserted in {time.perf_counter() - start:.1f} s")
        assert client.post("/api/v1/auth/login", json=common.login_credentials()).is_success

        reason = {"X-Access-Reason": "benchmark"}
        listing = client.get("/api/v1/cases")
        items = listing.json()["items"]
        total = listing.json().get("total", len(items))
        print(
            f"GET /api/v1/cases answers {len(items)} of {total} cases, "
            f"{len(listing.content) / 1024:.0f} KiB"
        )
        print(
            common.latency_line(
                "GET /api/v1/cases", timed(client, "/api/v1/cases", args.requests, {})
            )
        )
        client.get(f"/api/v1/cases/{newest}", headers=reason)  # the first read of the session
        samples = timed(client, f"/api/v1/cases/{newest}", args.requests, reason)
        print(common.latency_line("GET /api/v1/cases/{id}", samples))
        print("plan of the case's reason-given query:")
        print(asyncio.run(explain(args.database_url, REASON_QUERY)))


if __name__ == "__main__":
    main()
