"""Two hospitals, an insurer, an MCH programme and a referral partner side by side, end to end.

The real server (gunicorn, two workers, ``FHIR_AUTH=on``) over seeded data (``fhir-server seed
--patients 30 --seed 3``); the five clients registered with ``fhir-server clients add`` and their
tokens asked for with ``fhir-server token``, each signing with its own generated key. What each may
see and change is computed independently of the code under test: from the raw rows of the SQLite
file (a store opened without any guard) and the role definitions of SECURITY.md / issue 6, never
through the server's own filters. Profile enforcement is off: the resources created here are copies
of seeded ones, and the subject is access, not profiles.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from fhir_server.config import Settings
from fhir_server.store.base import SearchQuery
from fhir_server.store.sqlite import SqliteStore
from tests.e2e.server import Server, fhir_server_command

pytestmark = pytest.mark.e2e

FHIR_JSON = "application/fhir+json"
CANONICAL = Settings.from_env().canonical_base
MCH_SYSTEM = f"{CANONICAL}/CodeSystem/mch-visit-type"
OWNER_SYSTEM = f"{CANONICAL}/CodeSystem/record-owner"
MINDEX_SUFFIX = "/sid/ehc-mindex"
SUBSETTED = ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "SUBSETTED")
CLIENTS = ("hospital-a", "hospital-b", "insurer", "mch", "referral")
#: what each role's preset allows per type: read/search letters (DOMAIN.md C.7, issue 6)
READS = {
    "hospital-a": {"Patient", "Encounter", "Immunization", "ServiceRequest", "Task", "Organization"},
    "hospital-b": {"Patient", "Encounter", "Immunization", "ServiceRequest", "Task", "Organization"},
    "insurer": {"Patient", "Encounter", "Organization"},
    "mch": {"Patient", "Encounter", "Immunization", "Organization"},
    "referral": {"Patient", "Encounter", "Immunization", "ServiceRequest", "Organization"},
}
SEARCH_TYPES = ("Patient", "Encounter", "Immunization", "ServiceRequest", "Task")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*fhir_server_command(), *args], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, f"fhir-server {' '.join(args)}: {result.stderr}"
    return result


def ref(resource: dict[str, Any], *path: str) -> list[str]:
    """Every ``reference`` at ``path`` (lists flattened)."""
    values: list[Any] = [resource]
    for name in path:
        nxt: list[Any] = []
        for v in values:
            item = v.get(name) if isinstance(v, dict) else None
            nxt += item if isinstance(item, list) else ([item] if item is not None else [])
        values = nxt
    return [str(v["reference"]) for v in values if isinstance(v, dict) and "reference" in v]


# -- the database, read with no guard ----------------------------------------------------------
def raw(db: Path, rtype: str) -> dict[str, dict[str, Any]]:
    """The current, non-deleted resources of ``rtype`` in the file, straight from the store."""
    store = SqliteStore(db)
    try:
        rows = store.search(SearchQuery((rtype,), limit=100_000)).rows
    finally:
        store.close()
    return {r.id: json.loads(r.body) for r in rows if r.body is not None}


def organisation_kind(org: dict[str, Any]) -> str:
    codes = {c.get("code") for t in org.get("type", []) for c in t.get("coding", [])}
    text = " ".join([*(t.get("text", "") for t in org.get("type", [])), org.get("name", "")])
    if "ins" in codes:
        return "insurer"
    if "妇幼" in text:
        return "mch"
    if "社区卫生服务中心" in text:
        return "community"
    return "hospital" if "医院" in text else "other"


@dataclass
class Caller:
    name: str
    organization: str
    base: str
    session: requests.Session = field(default_factory=requests.Session)

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> requests.Response:
        head = {"Accept": FHIR_JSON, **headers}
        if body is not None:
            head["Content-Type"] = FHIR_JSON
        return self.session.request(method, f"{self.base}/{path}", timeout=60, headers=head,
                                    data=None if body is None else json.dumps(body))

    def search(self, rtype: str, query: str = "") -> tuple[int, set[str]]:
        """(status, ids of every page); ``total`` checked against what the pages hold."""
        response = self.call("GET", f"{rtype}?_count=1000&_total=accurate{query}")
        if response.status_code != 200:
            return response.status_code, set()
        ids: set[str] = set()
        bundle = response.json()
        total = bundle.get("total")
        while True:
            ids |= {e["resource"]["id"] for e in bundle.get("entry", [])
                    if e.get("search", {}).get("mode", "match") == "match"}
            nxt = [link["url"] for link in bundle.get("link", []) if link["relation"] == "next"]
            if not nxt:
                break
            page = self.session.get(nxt[0], headers={"Accept": FHIR_JSON}, timeout=60)
            assert page.status_code == 200, page.text
            bundle = page.json()
        assert total in (None, len(ids)), f"{self.name} {rtype}: total {total}, {len(ids)} found"
        return 200, ids


@dataclass
class World:
    db: Path
    server: Server
    callers: dict[str, Caller]
    orgs: dict[str, str]  # client name -> Organization id
    mine: dict[str, str]  # "encounter-a", "encounter-b", "mch-encounter", "referral", ...

    def __getitem__(self, name: str) -> Caller:
        return self.callers[name]


def copy_of(resource: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    out.update(changes)
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("roles")
    db = tmp / "fhir.db"
    store_url = f"sqlite:///{db}"
    cli("seed", "--patients", "30", "--seed", "3", "--store", store_url)

    by_kind: dict[str, list[str]] = {}
    for oid, org in sorted(raw(db, "Organization").items()):
        by_kind.setdefault(organisation_kind(org), []).append(oid)
    assert len(by_kind.get("hospital", [])) >= 2 and by_kind.get("community"), by_kind
    orgs = {"hospital-a": by_kind["hospital"][0], "hospital-b": by_kind["hospital"][1],
            "insurer": by_kind["insurer"][0], "mch": by_kind["mch"][0],
            "referral": by_kind["community"][0]}
    roles = {"hospital-a": "hospital", "hospital-b": "hospital", "insurer": "insurer",
             "mch": "mch", "referral": "referral"}
    keys = tmp / "keys"
    for name in CLIENTS:
        cli("keys", "generate", "--out", str(keys), "--client-id", name,
            "--alg", "RS384" if name == "insurer" else "ES384")
        cli("clients", "add", "--client-id", name, "--role", roles[name], "--organization",
            f"Organization/{orgs[name]}", "--jwks", str(keys / f"{name}.jwks.json"),
            "--store", store_url)

    server = Server(db, workers=2, env={"FHIR_AUTH": "on", "FHIR_ENFORCE_PROFILES": "off"}).start()
    try:
        callers = {}
        for name in CLIENTS:
            token = cli("token", "--url", server.root, "--client-id", name, "--key",
                        str(keys / f"{name}.key.pem"), "--scope", "system/*.cruds").stdout.strip()
            caller = Caller(name, orgs[name], server.base)
            caller.session.headers["Authorization"] = f"Bearer {token}"
            callers[name] = caller
        yield World(db, server, callers, orgs, set_up(db, callers, orgs))
    finally:
        server.stop()


def set_up(db: Path, callers: dict[str, Caller], orgs: dict[str, str]) -> dict[str, str]:
    """Records the hospitals write through the API: one Encounter each, an MCH visit, and two
    referrals to the referral partner (one active, one completed), for patients that have none."""
    encounters, requests_ = raw(db, "Encounter"), raw(db, "ServiceRequest")
    patients = sorted(raw(db, "Patient"))
    partner = f"Organization/{orgs['referral']}"
    referred = {s for sr in requests_.values() if partner in ref(sr, "performer")
                for s in ref(sr, "subject")}
    free = [p for p in patients if f"Patient/{p}" not in referred]
    template = next(iter(encounters.values()))
    mine: dict[str, str] = {}

    def create(caller: str, rtype: str, body: dict[str, Any]) -> str:
        response = callers[caller].call("POST", rtype, body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    for name, key in (("hospital-a", "encounter-a"), ("hospital-b", "encounter-b")):
        mine[key] = create(name, "Encounter", copy_of(
            template, subject={"reference": f"Patient/{free[0]}"},
            serviceProvider={"reference": f"Organization/{orgs[name]}"}))
    mine["mch-encounter"] = create("hospital-a", "Encounter", copy_of(
        template, subject={"reference": f"Patient/{free[1]}"},
        type=[{"coding": [{"system": MCH_SYSTEM, "code": "prenatal", "display": "产前检查"}]}]))
    sr = next(iter(requests_.values()))
    for key, patient, status in (("referral", free[2], "active"), ("referral-done", free[3], "completed")):
        mine[key] = create("hospital-a", "ServiceRequest", copy_of(
            sr, status=status, subject={"reference": f"Patient/{patient}"},
            performer=[{"reference": partner}]))
    mine["referred-patient"], mine["not-referred-patient"] = free[2], free[3]
    return mine


# -- what each client should see, from the raw rows --------------------------------------------
def expected_visible(world: World) -> dict[tuple[str, str], tuple[int, set[str]]]:
    db = world.db
    data = {t: raw(db, t) for t in SEARCH_TYPES}
    partner = f"Organization/{world.orgs['referral']}"
    referred = {s for sr in data["ServiceRequest"].values()
                if sr["status"] == "active" and partner in ref(sr, "performer")
                for s in ref(sr, "subject")}
    assert referred, "the set-up made an active referral to the partner"

    def of_referred(rtype: str, resource: dict[str, Any]) -> bool:
        fields = {"Patient": [], "Encounter": ["subject"], "Immunization": ["patient"],
                  "ServiceRequest": ["subject", "performer"]}.get(rtype)
        if fields is None:
            return False
        if rtype == "Patient":
            return f"Patient/{resource['id']}" in referred
        return any(r in referred for f in fields for r in ref(resource, f))

    def mch_typed(enc: dict[str, Any]) -> bool:
        return any(c.get("system") == MCH_SYSTEM for t in enc.get("type", [])
                   for c in t.get("coding", []))

    out: dict[tuple[str, str], tuple[int, set[str]]] = {}
    for name in CLIENTS:
        for rtype in SEARCH_TYPES:
            rows = data[rtype]
            if name == "referral" and rtype == "Task":
                out[name, rtype] = (403, set())  # Task.cru: no search
            elif rtype not in READS[name]:
                out[name, rtype] = (403, set())
            elif name == "mch" and rtype == "Encounter":
                out[name, rtype] = (200, {i for i, r in rows.items() if mch_typed(r)})
            elif name == "referral":
                out[name, rtype] = (200, {i for i, r in rows.items() if of_referred(rtype, r)
                                          or (rtype == "ServiceRequest"
                                              and partner in ref(r, "performer"))})
            else:
                out[name, rtype] = (200, set(rows))
    return out


def mismatches(observed: dict[Any, Any], expected: dict[Any, Any]) -> list[str]:
    out = []
    for key in expected:
        got, want = observed[key], expected[key]
        if got == want:
            continue
        if isinstance(want, tuple) and isinstance(want[1], set) and got[0] == want[0]:
            out.append(f"{key}: {len(got[1])} seen, {len(want[1])} expected; unexpected "
                       f"{sorted(got[1] - want[1])[:8]}, missing {sorted(want[1] - got[1])[:8]}")
        else:
            out.append(f"{key}: got {got}, expected {want}")
    return out


# -- the tests ----------------------------------------------------------------------------------
def test_each_client_finds_exactly_what_its_role_allows(world: World) -> None:
    expected = expected_visible(world)
    # the seeded data makes the sets differ: MCH visits are a strict subset of all encounters, the
    # referral partner's patients a strict subset of all patients
    assert 0 < len(expected["mch", "Encounter"][1]) < len(expected["insurer", "Encounter"][1])
    assert 0 < len(expected["referral", "Patient"][1]) < len(expected["hospital-a", "Patient"][1])
    assert world.mine["not-referred-patient"] not in expected["referral", "Patient"][1]
    observed = {(name, rtype): world[name].search(rtype) for name, rtype in expected}
    assert not mismatches(observed, expected)


def test_reads_by_id_side_by_side(world: World) -> None:
    """Every Patient, Encounter and ServiceRequest, and some Immunizations and Tasks, read by
    every client: 200 if its role sees it, 404 if the type is readable but the instance outside
    its policy, 403 if the type is not granted at all."""
    expected_sets = expected_visible(world)
    observed, expected = {}, {}
    for rtype in SEARCH_TYPES:
        ids = sorted(raw(world.db, rtype))
        if rtype in ("Immunization", "Task"):
            ids = ids[:: max(1, len(ids) // 12)]
        for name in CLIENTS:
            visible = expected_sets[name, rtype][1]
            if name == "referral" and rtype == "Task":  # Task.cru: read its own tasks only
                visible = {i for i, t in raw(world.db, "Task").items()
                           if f"Organization/{world.orgs['referral']}" in ref(t, "owner")}
            for rid in ids:
                if rtype not in READS[name] and not (name == "referral" and rtype == "Task"):
                    want = 403
                else:
                    want = 200 if rid in visible else 404
                expected[name, f"{rtype}/{rid}"] = want
                observed[name, f"{rtype}/{rid}"] = world[name].call("GET", f"{rtype}/{rid}").status_code
    assert not mismatches(observed, expected)


def test_insurer_and_mch_get_patients_without_the_master_index(world: World) -> None:
    patients = raw(world.db, "Patient")
    with_mindex = {i for i, p in patients.items()
                   if any(str(x.get("system", "")).endswith(MINDEX_SUFFIX) for x in p.get("identifier", []))}
    assert with_mindex, "seeded patients carry the card master index"
    for name in ("insurer", "mch", "hospital-a"):
        bundle = world[name].call("GET", "Patient?_count=1000").json()
        seen = {e["resource"]["id"]: e["resource"] for e in bundle["entry"]}
        assert set(seen) == set(patients)
        for rid, resource in seen.items():
            systems = [str(x.get("system", "")) for x in resource.get("identifier", [])]
            tags = {(t.get("system"), t.get("code")) for t in resource.get("meta", {}).get("tag", [])}
            if name == "hospital-a":  # clinical users see the record as stored
                assert resource == patients[rid] | {"meta": resource["meta"]}
                assert SUBSETTED not in tags
            else:
                assert not any(s.endswith(MINDEX_SUFFIX) for s in systems), (name, rid)
                assert (SUBSETTED in tags) == (rid in with_mindex or name == "insurer"), (name, rid)
                kept = [x for x in patients[rid].get("identifier", [])
                        if not str(x.get("system", "")).endswith(MINDEX_SUFFIX)]
                assert resource.get("identifier", []) == kept, (name, rid)


def test_insurer_sees_encounters_without_clinical_detail(world: World) -> None:
    encounters = raw(world.db, "Encounter")
    bundle = world["insurer"].call("GET", "Encounter?_count=1000").json()
    seen = {e["resource"]["id"]: e["resource"] for e in bundle["entry"]}
    assert set(seen) == set(encounters)
    clinical = {"reasonCode", "reasonReference", "diagnosis", "participant", "hospitalization",
                "location", "text", "contained"}
    assert sum(1 for e in encounters.values() if {"reasonCode", "participant"} <= set(e)) > 10
    for rid, resource in seen.items():
        stored = encounters[rid]
        assert not clinical & set(resource), (rid, clinical & set(resource))
        for kept in ("status", "class", "subject", "period", "serviceProvider"):
            assert resource.get(kept) == stored.get(kept), (rid, kept)
        assert SUBSETTED in {(t.get("system"), t.get("code")) for t in resource["meta"]["tag"]}


def test_writes_side_by_side(world: World) -> None:
    mine = world.mine
    encounters = raw(world.db, "Encounter")
    seeded_b = next(i for i, e in sorted(encounters.items())
                    if ref(e, "serviceProvider") == [f"Organization/{world.orgs['hospital-b']}"]
                    and i not in mine.values())
    immunization = next(iter(raw(world.db, "Immunization").values()))
    patient = mine["referred-patient"]

    def put(name: str, rtype: str, rid: str, **changes: Any) -> int:
        current = raw(world.db, rtype)[rid]
        body = {**current, **changes}
        return world[name].call("PUT", f"{rtype}/{rid}", body).status_code

    def post(name: str, rtype: str, body: dict[str, Any]) -> int:
        return world[name].call("POST", rtype, body).status_code

    new_immunization = copy_of(immunization, patient={"reference": f"Patient/{patient}"},
                               occurrenceDateTime="2026-06-01")
    observed = {
        "hospital A updates its own Encounter": put("hospital-a", "Encounter", mine["encounter-a"],
                                                    status="entered-in-error"),
        "hospital B updates its own Encounter": put("hospital-b", "Encounter", mine["encounter-b"],
                                                    status="entered-in-error"),
        "hospital A updates hospital B's Encounter": put("hospital-a", "Encounter",
                                                         mine["encounter-b"], status="cancelled"),
        "hospital B updates hospital A's Encounter": put("hospital-b", "Encounter",
                                                         mine["encounter-a"], status="cancelled"),
        "hospital A updates a seeded Encounter of hospital B": put(
            "hospital-a", "Encounter", seeded_b, status="cancelled"),
        "hospital A deletes hospital B's Encounter": world["hospital-a"].call(
            "DELETE", f"Encounter/{mine['encounter-b']}").status_code,
        "hospital B reads hospital A's Encounter": world["hospital-b"].call(
            "GET", f"Encounter/{mine['encounter-a']}").status_code,
        "insurer updates an Encounter": put("insurer", "Encounter", mine["encounter-a"],
                                            status="cancelled"),
        "insurer creates an Immunization": post("insurer", "Immunization", new_immunization),
        "MCH creates an Immunization": post("mch", "Immunization", new_immunization),
        "MCH updates its programme's Encounter": put("mch", "Encounter", mine["mch-encounter"],
                                                     status="cancelled"),
        "referral partner updates the referral to it": put(
            "referral", "ServiceRequest", mine["referral"],
            note=[{"text": "已接诊 (accepted by the referral partner)"}]),
        "referral partner updates another referral": put(
            "referral", "ServiceRequest", next(i for i in sorted(raw(world.db, "ServiceRequest"))
                                               if i not in expected_visible(world)
                                               ["referral", "ServiceRequest"][1]),
            status="revoked"),
        "referral partner creates a Patient": post("referral", "Patient", {
            k: v for k, v in copy_of(raw(world.db, "Patient")[patient]).items()
            if k != "identifier"}),
    }
    expected = {
        "hospital A updates its own Encounter": 200,
        "hospital B updates its own Encounter": 200,
        "hospital A updates hospital B's Encounter": 403,
        "hospital B updates hospital A's Encounter": 403,
        "hospital A updates a seeded Encounter of hospital B": 403,
        "hospital A deletes hospital B's Encounter": 403,
        "hospital B reads hospital A's Encounter": 200,
        "insurer updates an Encounter": 403,
        "insurer creates an Immunization": 403,
        "MCH creates an Immunization": 201,
        "MCH updates its programme's Encounter": 403,
        "referral partner updates the referral to it": 200,
        "referral partner updates another referral": 404,
        "referral partner creates a Patient": 403,
    }
    assert observed == expected
    after = raw(world.db, "Encounter")
    assert after[mine["encounter-a"]]["status"] == "entered-in-error"
    assert after[mine["encounter-b"]]["status"] == "entered-in-error"  # B's own update only
    assert after[seeded_b] == encounters[seeded_b]
    owners = {(t["system"], t["code"]) for t in after[mine["encounter-a"]]["meta"]["tag"]
              if t["system"] == OWNER_SYSTEM}
    assert owners == {(OWNER_SYSTEM, world.orgs["hospital-a"])}


def _normalised(response: requests.Response, rid: str) -> tuple[int, dict[str, str], bytes]:
    headers = {k.lower(): v for k, v in response.headers.items()
               if k.lower() not in ("date", "x-request-id", "server-timing")}
    return response.status_code, headers, response.content.replace(rid.encode(), b"<id>")


@pytest.mark.parametrize(("name", "path"), [
    ("referral", "Patient/{hidden}"),
    ("referral", "Patient/{hidden}/_history"),
    ("referral", "Patient/{hidden}/_history/1"),
    ("referral", "Patient/{hidden}/$everything"),
    ("referral", "Encounter/{hidden-encounter}"),
    ("mch", "Encounter/{hidden-encounter}"),
])
def test_outside_policy_is_byte_identical_to_never_existing(world: World, name: str, path: str) -> None:
    hidden = world.mine["not-referred-patient"]
    hidden_encounter = next(i for i, e in sorted(raw(world.db, "Encounter").items())
                            if ref(e, "subject") == [f"Patient/{hidden}"])
    rid = hidden if "{hidden}" in path else hidden_encounter
    never = uuid.uuid4().hex[: len(rid)]
    assert len(never) == len(rid)  # the same Content-Length
    request_id = "same-request-id"
    caller = world[name]
    real = caller.call("GET", path.format_map({"hidden": rid, "hidden-encounter": rid}),
                       **{"X-Request-Id": request_id})
    absent = caller.call("GET", path.format_map({"hidden": never, "hidden-encounter": never}),
                         **{"X-Request-Id": request_id})
    assert real.status_code == 404
    assert _normalised(real, rid) == _normalised(absent, never)
    # and a client allowed to see it does
    assert world["hospital-a"].call("GET", path.format_map(
        {"hidden": rid, "hidden-encounter": rid})).status_code == 200


def test_referral_partner_gets_the_history_of_its_patients(world: World) -> None:
    patient = world.mine["referred-patient"]
    expected = expected_visible(world)
    everything = world["referral"].call("GET", f"Patient/{patient}/$everything?_count=1000")
    assert everything.status_code == 200, everything.text
    got = {(e["resource"]["resourceType"], e["resource"]["id"])
           for e in everything.json().get("entry", [])}
    want_types = ("Patient", "Encounter", "Immunization", "ServiceRequest")
    want = {(t, i) for t in want_types for i, r in raw(world.db, t).items()
            if (t == "Patient" and i == patient)
            or (t != "Patient" and f"Patient/{patient}" in ref(r, "subject") + ref(r, "patient"))}
    assert {(t, i) for t, i in got if t in want_types} == want
    assert all(i in expected["referral", t][1] for t, i in got if t in want_types)
    assert ("Patient", patient) in got and any(t == "Encounter" for t, _ in got)
    history = world["referral"].call("GET", f"Patient/{patient}/_history")
    assert history.status_code == 200 and history.json()["entry"]
    searched = world["referral"].search("Encounter", f"&patient={world.mine['not-referred-patient']}")
    assert searched == (200, set())


def test_includes_add_only_what_the_client_may_see(world: World) -> None:
    """The partner's completed referral points at a patient it may not see: ``_include`` must
    not bring that patient in; ``_revinclude`` from the insurer's Patients must not bring in what
    the insurer cannot read."""
    expected = expected_visible(world)
    bundle = world["referral"].call(
        "GET", "ServiceRequest?_count=1000&_include=ServiceRequest:subject").json()
    included = {e["resource"]["id"] for e in bundle.get("entry", [])
                if e["search"]["mode"] == "include"}
    assert world.mine["referred-patient"] in included
    assert included == expected["referral", "Patient"][1] & {
        r.partition("/")[2] for i in expected["referral", "ServiceRequest"][1]
        for r in ref(raw(world.db, "ServiceRequest")[i], "subject")}
    assert world.mine["not-referred-patient"] not in included

    bundle = world["insurer"].call(
        "GET", "Patient?_count=1000&_revinclude=Encounter:subject&_revinclude=Immunization:patient"
    ).json()
    kinds = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"]}
    assert kinds == {("Patient", "match"), ("Encounter", "include")}


def test_an_active_referral_elsewhere_does_not_open_a_completed_one(world: World) -> None:
    """The patient with only a *completed* referral to the partner gets an active referral to
    hospital B: the partner must still not see them (the same referral must be both active and
    addressed to it). Runs last: it adds data the other tests do not expect."""
    patient = world.mine["not-referred-patient"]
    sr = raw(world.db, "ServiceRequest")[world.mine["referral-done"]]
    created = world["hospital-a"].call("POST", "ServiceRequest", copy_of(
        sr, status="active", performer=[{"reference": f"Organization/{world.orgs['hospital-b']}"}]))
    assert created.status_code == 201, created.text
    assert world["hospital-b"].call("GET", f"Patient/{patient}").status_code == 200
    assert world["referral"].call("GET", f"Patient/{patient}").status_code == 404
    assert patient not in world["referral"].search("Patient")[1]
