"""Key custody against someone who can write to the database, and the organisation key rotation.

The attacker here has the database and nothing else: no server secret key, no session cookie.
They write rows by SQL and then try to read reports with the keys they hold.
"""

import uuid

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import crypto
from app.config import Settings
from app.models import AuditEvent, KeyRotation, Member, Membership, Organisation, Report
from app.services import audit, auth, keys, reports, rotation, team
from tests.factories import PASSWORD, login, register, submit, verified_organisation

Sessionmaker = async_sessionmaker[AsyncSession]
REASON = {"X-Access-Reason": "assessment"}
ATTACKER_PASSWORD = "mallory's own long password"
WRONG_SERVER_KEY = "22" * 32


async def _member_private_key(
    sessionmaker: Sessionmaker, email: str, password: str = PASSWORD
) -> bytes:
    """What a person holds: the private key their password unwraps."""
    async with sessionmaker() as session:
        member = await session.scalar(select(Member).where(Member.email == email))
    assert member is not None
    derived = await keys.derive_password_keys(
        password, member.password_salt, crypto.Argon2Params.decode(member.password_params)
    )
    return keys.unwrap_member_key(derived, member.id, member.wrapped_private_key)


async def _organisation_key_of(sessionmaker: Sessionmaker, slug: str, email: str) -> bytes:
    """The organisation private key a person's grant opens (what they could keep a copy of)."""
    private_key = await _member_private_key(sessionmaker, email)
    async with sessionmaker() as session:
        organisation_id, member_id, grant = (
            await session.execute(
                select(Organisation.id, Member.id, Membership.org_key_grant)
                .join(Membership, Membership.organisation_id == Organisation.id)
                .join(Member, Member.id == Membership.member_id)
                .where(Organisation.slug == slug, Member.email == email)
            )
        ).one()
    assert grant is not None
    return keys.open_grant(grant, private_key, organisation_id, member_id)


async def _plant_member(
    sessionmaker: Sessionmaker, organisation_id: uuid.UUID, email: str, tag: bytes | None = None
) -> uuid.UUID:
    """A member and membership written by SQL, with a key pair and password of the attacker's."""
    member_id = uuid.uuid4()
    pair = crypto.generate_keypair()
    salt = crypto.new_salt()
    params = crypto.Argon2Params(memory_kib=1024, iterations=1, lanes=1)
    derived = crypto.derive_password_keys(ATTACKER_PASSWORD, salt, params)
    async with sessionmaker() as session, session.begin():
        session.add(
            Member(
                id=member_id,
                email=email,
                password_salt=salt,
                password_params=params.encode(),
                password_verifier=derived.verifier,
                public_key=pair.public,
                wrapped_private_key=crypto.seal(
                    derived.wrap_key, pair.private, b"member-key|" + member_id.bytes
                ),
            )
        )
        await session.flush()
        session.add(Membership(organisation_id=organisation_id, member_id=member_id, tag=tag))
    return member_id


async def _organisation(sessionmaker: Sessionmaker, slug: str) -> Organisation:
    async with sessionmaker() as session:
        organisation = await session.scalar(select(Organisation).where(Organisation.slug == slug))
    assert organisation is not None
    return organisation


def _opens(private_key: bytes, report: Report) -> bool:
    if report.key_for_organisation is None:
        return False
    try:
        crypto.open_with(
            private_key, report.key_for_organisation, reports.aad(b"report-key", report.id)
        )
    except crypto.CryptoError:
        return False
    return True


async def _reports(sessionmaker: Sessionmaker, organisation_id: uuid.UUID) -> list[Report]:
    async with sessionmaker() as session:
        found = await session.scalars(
            select(Report).where(Report.organisation_id == organisation_id)
        )
        return list(found)


@pytest.mark.parametrize("tag", ["none", "forged"])
async def test_a_member_planted_by_sql_is_never_granted_access(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings, tag: str
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    slug = registered["slug"]
    await submit(client, slug)
    organisation = await _organisation(sessionmaker, slug)
    forged = None
    if tag == "forged":  # a tag under a key the attacker guessed, not the server's
        wrong = settings.model_copy(update={"secret_key": WRONG_SERVER_KEY})
        forged = keys.integrity_tag(wrong, b"membership", organisation.id.bytes)
    planted = await _plant_member(sessionmaker, organisation.id, "mallory@example.cz", forged)

    await login(client, registered["email"])  # a key holder's login grants nobody
    members = (await client.get(f"/api/v1/organisations/{slug}/members")).json()["items"]
    mallory = next(m for m in members if m["email"] == "mallory@example.cz")
    assert (mallory["authentic"], mallory["has_access"]) == (False, False)
    page = await client.get(f"/organisations/{slug}/team?lang=en")
    assert "This entry was not made by Píšťalka" in page.text
    assert f"/team/{planted}/confirm" not in page.text
    refused = await client.post(f"/api/v1/organisations/{slug}/members/{planted}/grant")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "membership_not_authentic"
    await client.post("/api/v1/auth/logout")

    async with sessionmaker() as session:
        grant = await session.scalar(
            select(Membership.org_key_grant).where(Membership.member_id == planted)
        )
    assert grant is None
    assert (await login(client, "mallory@example.cz", ATTACKER_PASSWORD)).status_code == 200
    cases = await client.get(f"/api/v1/cases?organisation={slug}")
    assert cases.status_code == 403


async def test_a_public_key_swapped_by_sql_is_not_granted_and_the_person_sees_it(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    first = await verified_organisation(client, sessionmaker)
    second = await register(client)
    await login(client, first["email"])
    invited = await client.post(
        f"/api/v1/organisations/{first['slug']}/members", json={"email": second["email"]}
    )
    assert invited.status_code == 202
    attacker = crypto.generate_keypair()
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Member).where(Member.email == second["email"]).values(public_key=attacker.public)
        )
    members = (await client.get(f"/api/v1/organisations/{first['slug']}/members")).json()["items"]
    offered = next(m for m in members if m["email"] == second["email"])
    assert offered["authentic"] is False
    assert offered["fingerprint"] == crypto.fingerprint(attacker.public)
    refused = await client.post(
        f"/api/v1/organisations/{first['slug']}/members/{offered['member_id']}/grant"
    )
    assert refused.status_code == 409
    await client.post("/api/v1/auth/logout")
    # The person's own profile shows the fingerprint of the key their password unlocks.
    me = (await login(client, second["email"])).json()
    assert me["key_fingerprint"] != offered["fingerprint"]
    profile = await client.get("/profile")
    assert me["key_fingerprint"] in profile.text


async def test_an_organisation_key_swapped_by_sql_gets_no_report(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    slug = registered["slug"]
    attacker = crypto.generate_keypair()
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Organisation).where(Organisation.slug == slug).values(public_key=attacker.public)
        )
    refused = await client.post(
        f"/api/v1/public/{slug}/reports", json={"description": "Something to hide."}
    )
    assert refused.status_code == 500
    assert refused.json()["error"]["code"] == "key_integrity_failure"
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Report)) == 0
    # A key holder's next access notices it too: their grant opens another key.
    await login(client, registered["email"])
    assert (await client.get(f"/api/v1/cases?organisation={slug}")).status_code == 500


async def _add_key_holder(
    client: httpx.AsyncClient, slug: str, holder: dict[str, str], email: str
) -> str:
    """Invite an existing account and confirm its access, as the key holder `holder`."""
    await login(client, holder["email"])
    await client.post(f"/api/v1/organisations/{slug}/members", json={"email": email})
    members = (await client.get(f"/api/v1/organisations/{slug}/members")).json()["items"]
    member_id: str = next(m["member_id"] for m in members if m["email"] == email)
    confirmed = await client.post(f"/api/v1/organisations/{slug}/members/{member_id}/grant")
    assert confirmed.status_code == 204, confirmed.text
    return member_id


async def test_removing_a_key_holder_rotates_the_key_so_their_copy_opens_nothing(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    first = await verified_organisation(client, sessionmaker)
    second = await register(client)
    slug = first["slug"]
    for _ in range(3):
        await submit(client, slug)
    leaver = await _add_key_holder(client, slug, first, second["email"])
    kept_copy = await _organisation_key_of(sessionmaker, slug, second["email"])
    before = await _organisation(sessionmaker, slug)
    assert all(_opens(kept_copy, report) for report in await _reports(sessionmaker, before.id))

    removed = await client.delete(f"/api/v1/organisations/{slug}/members/{leaver}")
    assert removed.status_code == 204, removed.text
    await submit(client, slug)

    after = await _organisation(sessionmaker, slug)
    assert after.key_version == before.key_version + 1
    assert after.public_key != before.public_key
    every = await _reports(sessionmaker, after.id)
    assert len(every) == 4
    assert {report.key_version for report in every} == {after.key_version}
    assert not any(_opens(kept_copy, report) for report in every)
    async with sessionmaker() as session:
        assert await session.get(KeyRotation, after.id) is None
    # The remaining key holder reads every case, and the recovery key still opens the new key.
    items = (await client.get(f"/api/v1/cases?organisation={slug}")).json()["items"]
    for item in items:
        assert (await client.get(f"/api/v1/cases/{item['id']}", headers=REASON)).status_code == 200
    recovered = keys.open_with_recovery_key(
        first["recovery_key"], after.recovery_wrapped_key, after.id, after.recovery_grant
    )
    assert crypto.public_key_of(recovered) == after.public_key


async def test_a_rotation_cut_off_half_way_leaves_every_report_readable_and_resumes(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    slug = registered["slug"]
    for _ in range(5):
        await submit(client, slug)
    monkeypatch.setattr(rotation, "BATCH", 2)
    # The state a crash leaves: the rotation started and committed, one batch re-sealed.
    async with sessionmaker() as session:
        logged_in = await auth.login(session, settings, registered["email"], PASSWORD, None)
        await session.commit()
        current = await auth.resolve_session(session, settings, logged_in.cookie_value)
        assert current is not None
        organisation = await session.scalar(select(Organisation).where(Organisation.slug == slug))
        assert organisation is not None
        job = await team.rotate_key(session, settings, organisation, current)
        await session.commit()
        new_public_key = (await session.get_one(KeyRotation, organisation.id)).public_key
    async with sessionmaker() as session, session.begin():
        assert await rotation._reseal_batch(session, job, new_public_key) == 2
    del job  # the process is gone, and the keys it held with it

    await submit(client, slug)  # reports keep coming in meanwhile
    versions = [r.key_version for r in await _reports(sessionmaker, organisation.id)]
    assert sorted(versions) == [1, 1, 1, 1, 2, 2]
    await login(client, registered["email"])
    items = (await client.get(f"/api/v1/cases?organisation={slug}")).json()["items"]
    for item in items:
        assert (await client.get(f"/api/v1/cases/{item['id']}", headers=REASON)).status_code == 200
    page = await client.get(f"/organisations/{slug}/team?lang=en")
    assert "Continue the change of the key" in page.text

    resumed = await client.post(f"/api/v1/organisations/{slug}/key-rotation")
    assert resumed.status_code == 202, resumed.text
    after = await _organisation(sessionmaker, slug)
    assert after.key_version == 2
    assert {r.key_version for r in await _reports(sessionmaker, after.id)} == {2}
    async with sessionmaker() as session:
        assert await session.get(KeyRotation, after.id) is None
    for item in items:
        assert (await client.get(f"/api/v1/cases/{item['id']}")).status_code == 200


async def test_a_key_holder_who_leaves_by_themselves_takes_no_copy_of_the_new_key(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    first = await verified_organisation(client, sessionmaker)
    second = await register(client)
    slug = first["slug"]
    await submit(client, slug)
    leaver = await _add_key_holder(client, slug, first, second["email"])
    kept_copy = await _organisation_key_of(sessionmaker, slug, second["email"])
    await client.post("/api/v1/auth/logout")
    await login(client, second["email"])
    left = await client.delete(f"/api/v1/organisations/{slug}/members/{leaver}")
    assert left.status_code == 204, left.text
    await submit(client, slug)
    after = await _organisation(sessionmaker, slug)
    assert after.key_version == 2
    assert not any(_opens(kept_copy, report) for report in await _reports(sessionmaker, after.id))
    await client.post("/api/v1/auth/logout")
    await login(client, first["email"])
    items = (await client.get(f"/api/v1/cases?organisation={slug}")).json()["items"]
    assert len(items) == 2
    for item in items:
        assert (await client.get(f"/api/v1/cases/{item['id']}", headers=REASON)).status_code == 200


async def _reasons(sessionmaker: Sessionmaker, organisation_id: uuid.UUID) -> list[AuditEvent]:
    async with sessionmaker() as session:
        found = await session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.organisation_id == organisation_id,
                AuditEvent.sealed_reason.is_not(None),
            )
            .order_by(AuditEvent.seq)
        )
        return list(found)


async def test_a_key_rotation_reseals_the_reasons_of_access_and_keeps_the_chain(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    slug = registered["slug"]
    for _ in range(4):
        await submit(client, slug)
    await login(client, registered["email"])
    items = (await client.get(f"/api/v1/cases?organisation={slug}")).json()["items"]
    reasons = [f"kontrola případu {n}" for n in range(len(items))]
    for item, reason in zip(items, reasons, strict=True):
        headers = {b"X-Access-Reason": reason.encode()}
        assert (await client.get(f"/api/v1/cases/{item['id']}", headers=headers)).status_code == 200
    old_key = await _organisation_key_of(sessionmaker, slug, registered["email"])
    monkeypatch.setattr(rotation, "BATCH", 3)

    rotated = await client.post(f"/api/v1/organisations/{slug}/key-rotation")
    assert rotated.status_code == 202, rotated.text

    after = await _organisation(sessionmaker, slug)
    assert after.key_version == 2
    events = await _reasons(sessionmaker, after.id)
    assert [event.reason_key_version for event in events] == [2] * len(reasons)
    assert audit.open_reasons(events, {1: old_key, 2: old_key}) == {}
    page = (await client.get(f"/organisations/{slug}/audit?lang=en")).text
    assert all(reason in page for reason in reasons)
    assert "Sealed reason" not in page
    async with sessionmaker() as session:
        verified = await audit.verify(session, after.id)
    assert (verified.ok, verified.checked) == (True, len(reasons) + 2)


async def test_a_reason_given_while_the_key_is_being_changed_is_resealed_too(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    slug = registered["slug"]
    await submit(client, slug)
    # A rotation started and committed, then cut off before it re-sealed anything.
    async with sessionmaker() as session:
        logged_in = await auth.login(session, settings, registered["email"], PASSWORD, None)
        await session.commit()
        current = await auth.resolve_session(session, settings, logged_in.cookie_value)
        assert current is not None
        organisation = await session.scalar(select(Organisation).where(Organisation.slug == slug))
        assert organisation is not None
        await team.rotate_key(session, settings, organisation, current)
        await session.commit()
    await login(client, registered["email"])
    [item] = (await client.get(f"/api/v1/cases?organisation={slug}")).json()["items"]
    headers = {"X-Access-Reason": "during the change of the key"}
    assert (await client.get(f"/api/v1/cases/{item['id']}", headers=headers)).status_code == 200
    [event] = await _reasons(sessionmaker, organisation.id)
    assert event.reason_key_version == 1

    resumed = await client.post(f"/api/v1/organisations/{slug}/key-rotation")
    assert resumed.status_code == 202, resumed.text

    [event] = await _reasons(sessionmaker, organisation.id)
    assert event.reason_key_version == 2
    page = (await client.get(f"/cases/{item['id']}?lang=en")).text
    assert "during the change of the key" in page
    async with sessionmaker() as session:
        assert (await audit.verify(session, organisation.id)).ok
