"""Operators' tools through the real CLI (in process) on SQLite and PostgreSQL, and the
same calls over the admin API on a real ``paytoken serve``."""

from __future__ import annotations

import csv
import io
import json

import httpx
import paycode
import pytest
from paytoken.backend import BackendError
from paytoken.backend.service import Backend
from paytoken.backend.service.ledger import EXPORT_COLUMNS
from paytoken.backend.service.operators import iso
from paytoken.backend.store.db import make_engine
from paytoken.backend.store.models import AuditLog
from paytoken.cli import main
from sqlalchemy import select

from .conftest import SECRET, T0, Server

DAY = 86400


def run(capsys, *argv, rc=0):
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    out = capsys.readouterr()
    assert e.value.code == rc, (argv, out.err)
    return out


def cli_json(capsys, w, *argv):
    return json.loads(run(capsys, *argv, "--db", w.url, "--json").out)


def actions(backend) -> list[str]:
    with backend.engine.connect() as c:
        return list(c.execute(select(AuditLog.__table__.c.action).order_by(AuditLog.__table__.c.seq)).scalars())


def test_merchants_admins_and_schemes(world, capsys, ring):
    w = world
    cafe = cli_json(capsys, w, "merchant", "add", "café 2")
    listed = cli_json(capsys, w, "merchant", "list")
    assert [m["name"] for m in listed] == ["shop", "café 2"] and all(m["status"] == "active" for m in listed)
    text = json.dumps(listed) + run(capsys, "merchant", "list", "--db", w.url).out
    assert w.api_key not in text and cafe["api_key"] not in text and "hash" not in text
    # rotate: the old key stops, the new one works (a fresh process: no cache)
    new = cli_json(capsys, w, "merchant", "rotate-key", "shop")
    assert new["api_key"].startswith("ptk_live_") and new["api_key"] != w.api_key
    fresh = Backend(make_engine(w.url), ring)
    assert fresh.auth_merchant(w.api_key) is None and fresh.auth_merchant(new["api_key"]) == w.merchant_id
    cli_json(capsys, w, "merchant", "revoke", "shop")
    fresh.forget_merchant_keys()
    assert fresh.auth_merchant(new["api_key"]) is None
    assert "already revoked" in run(capsys, "merchant", "revoke", "shop", "--db", w.url, rc=1).err
    assert "revoked" in run(capsys, "merchant", "rotate-key", "shop", "--db", w.url, rc=1).err
    assert "no merchant" in run(capsys, "merchant", "revoke", "nobody", "--db", w.url, rc=1).err
    assert cli_json(capsys, w, "merchant", "list", "--active") == [
        dict(listed[1], status="active")]
    assert fresh.auth_merchant(cafe["api_key"]) == cafe["merchant_id"]
    fresh.engine.dispose()

    # admins: never the last one
    a1 = cli_json(capsys, w, "admin", "add", "ops")
    cli_json(capsys, w, "admin", "add", "night shift")
    assert [a["name"] for a in cli_json(capsys, w, "admin", "list")] == ["ops", "night shift"]
    assert a1["admin_key"] not in run(capsys, "admin", "list", "--db", w.url, "--json").out
    assert cli_json(capsys, w, "admin", "remove", "ops")["admins_left"] == 1
    assert w.backend.auth_admin(a1["admin_key"]) is None
    assert "last admin" in run(capsys, "admin", "remove", "night shift", "--db", w.url, rc=1).err
    assert "no admin" in run(capsys, "admin", "remove", "ops", "--db", w.url, rc=1).err

    # schemes: list (never a key), retire (no new tokens; old ones keep paying)
    w.backend.add_scheme("82")
    schemes = cli_json(capsys, w, "scheme", "list")
    assert [(s["prefix"], s["status"], s["tokens"]["active"]) for s in schemes] == [("81", "active", 1),
                                                                                    ("82", "active", 0)]
    assert w.scheme_key.hex() not in json.dumps(schemes)
    assert cli_json(capsys, w, "scheme", "retire", "81")["status"] == "retired"
    assert "already retired" in run(capsys, "scheme", "retire", "81", "--db", w.url, rc=1).err
    with pytest.raises(BackendError, match="retired") as e:
        w.backend.add_token(43, SECRET, prefix="81")
    assert e.value.kind == "conflict"
    w.backend.add_token(44, SECRET, prefix="82")
    code = paycode.payment_code(SECRET, 42, T0, w.scheme_key)
    assert w.backend.pay(cafe["merchant_id"], code, 100, "CNY", "after-retire")["status"] == "succeeded"
    done = actions(w.backend)
    for action in ("MERCHANT_ADD", "MERCHANT_KEY_ROTATE", "MERCHANT_REVOKE", "ADMIN_ADD", "ADMIN_REMOVE",
                   "SCHEME_RETIRE"):
        assert action in done
    assert w.backend.verify_audit().ok


def test_token_list_filters_and_pages(world, capsys):
    w = world
    for tid in range(100, 125):
        w.backend.add_token(tid, SECRET, currency="EUR" if tid % 5 == 0 else "CNY")
    for tid in (101, 102):
        w.backend.set_status(tid, "revoked", "test")
    first = run(capsys, "token", "list", "--limit", "10", "--db", w.url, "--json")
    page = json.loads(first.out)
    assert [t["token_id"] for t in page] == [42, *range(100, 109)]
    assert "more remain: repeat with --after 108" in first.err
    last = run(capsys, "token", "list", "--limit", "10", "--after", "118", "--db", w.url, "--json")
    assert [t["token_id"] for t in json.loads(last.out)] == list(range(119, 125)) and "more remain" not in last.err
    everything = run(capsys, "token", "list", "--limit", "7", "--all", "--db", w.url, "--json")
    assert [t["token_id"] for t in json.loads(everything.out)] == [42, *range(100, 125)]
    assert "more remain" not in everything.err
    assert [t["token_id"] for t in cli_json(capsys, w, "token", "list", "--status", "revoked")] == [101, 102]
    assert [t["token_id"] for t in cli_json(capsys, w, "token", "list", "--currency", "EUR")] == list(
        range(100, 125, 5))
    assert cli_json(capsys, w, "token", "list", "--prefix", "82") == []
    assert "more remain" in run(capsys, "token", "list", "--limit", "3", "--db", w.url).err
    assert "out of range (1 to 1000)" in run(capsys, "token", "list", "--limit", "5000", "--db", w.url, rc=1).err
    assert "--after" in run(capsys, "token", "list", "--after", "x", "--db", w.url, rc=1).err


def test_accounts_credit_debit_history(world, capsys):
    w = world
    code = paycode.payment_code(SECRET, 42, T0, w.scheme_key)
    pay = w.backend.pay(w.merchant_id, code, 2500, "CNY", "o-1")
    w.backend.refund(w.merchant_id, pay["payment_id"], 500)
    c = cli_json(capsys, w, "account", "credit", "--token-id", "42", "--amount", "300", "--reason",
                 "goodwill: late delivery")
    assert c["balance"] == 100_000 - 2500 + 500 + 300 and c["kind"] == "credit"
    d = cli_json(capsys, w, "account", "debit", "--token-id", "42", "--amount", "1000", "--reason",
                 "chargeback 17")
    assert d["balance"] == c["balance"] - 1000 and d["amount"] == -1000
    err = run(capsys, "account", "debit", "--token-id", "42", "--amount", str(10**9), "--reason", "x",
              "--db", w.url, rc=1).err
    assert "exceeds the balance" in err
    assert run(capsys, "account", "debit", "--token-id", "42", "--amount", "5", "--db", w.url, rc=1)
    assert "reason" in run(capsys, "account", "debit", "--token-id", "42", "--amount", "5", "--reason", "",
                           "--db", w.url, rc=1).err
    assert "no account" in run(capsys, "account", "show", "--token-id", "7", "--db", w.url, rc=1).err
    shown = cli_json(capsys, w, "account", "show", "--token-id", "42")
    assert shown == {"token_id": 42, "currency": "CNY", "balance": d["balance"], "status": "active"}
    hist = cli_json(capsys, w, "account", "history", "--token-id", "42")
    # oldest first; within one second by id (the two CLI adjustments may share a second)
    assert [(e["kind"], e["amount"]) for e in hist[:3]] == [("credit", 100_000), ("payment", -2500),
                                                             ("refund", 500)]
    assert sorted((e["kind"], e["amount"], e["reason"], e["actor"]) for e in hist[3:]) == [
        ("credit", 300, "goodwill: late delivery", "cli"), ("debit", -1000, "chargeback 17", "cli")]
    assert sum(e["amount"] for e in hist) == shown["balance"]
    assert hist[1]["merchant_order_id"] == "o-1" and hist[2]["payment_id"] == pay["payment_id"]
    # pages: two at a time, the cursor says where to go on
    out = run(capsys, "account", "history", "--token-id", "42", "--limit", "2", "--db", w.url, "--json")
    cursor = out.err.split("--after ", 1)[1].strip()
    rest = cli_json(capsys, w, "account", "history", "--token-id", "42", "--after", cursor, "--all")
    assert json.loads(out.out) + rest == hist
    assert cli_json(capsys, w, "account", "history", "--token-id", "42", "--since", iso(T0 + 1)) == hist[3:]
    assert "after must be a cursor" in run(capsys, "account", "history", "--token-id", "42", "--after", "zz",
                                           "--db", w.url, rc=1).err
    assert {"CREDIT", "DEBIT"} <= set(actions(w.backend)) and w.backend.verify_audit().ok


def test_payments_refunds_and_the_daily_export(world, capsys, ring):
    w = world
    b = w.backend
    mid2, _ = b.add_merchant("kiosk")
    b.add_token(43, SECRET)
    b.credit(43, 1000)
    p1 = b.pay(w.merchant_id, paycode.payment_code(SECRET, 42, T0, w.scheme_key), 1200, "CNY", "a-1")
    w.clock.t = T0 + 3600
    p2 = b.pay(mid2, paycode.payment_code(SECRET, 43, T0 + 3600, w.scheme_key), 5000, "CNY", "k-1")
    assert p2["reason"] == "INSUFFICIENT_FUNDS"
    w.clock.t = T0 + DAY + 60  # the next UTC day
    p3 = b.pay(mid2, paycode.payment_code(SECRET, 43, T0 + DAY + 60, w.scheme_key), 400, "CNY", "k-2")
    ids = [p1["payment_id"], p2["payment_id"], p3["payment_id"]]

    def ids_of(*argv):
        return [p["payment_id"] for p in cli_json(capsys, w, "payment", "list", *argv)]

    assert ids_of() == ids
    assert ids_of("--merchant", "kiosk") == ids[1:]
    assert ids_of("--token-id", "43", "--status", "succeeded") == [ids[2]]
    assert ids_of("--status", "refused") == [ids[1]]
    assert ids_of("--since", "2026-01-01T00:30:00Z", "--until", "2026-01-02T00:00:00+00:00") == [ids[1]]
    assert ids_of("--until", str(T0 + 1)) == [ids[0]]
    assert "local time is never assumed" in run(capsys, "payment", "list", "--since", "2026-01-01T00:00", "--db", w.url, rc=1).err
    assert "no merchant" in run(capsys, "payment", "list", "--merchant", "x", "--db", w.url, rc=1).err
    first = run(capsys, "payment", "list", "--limit", "2", "--db", w.url, "--json")
    cursor = first.err.split("--after ", 1)[1].strip()
    assert [p["payment_id"] for p in json.loads(first.out)] == ids[:2] and ids_of("--after", cursor) == ids[2:]

    # a refund from the CLI, with an idempotency key; then the lookups see it
    r = cli_json(capsys, w, "payment", "refund", ids[0], "--amount", "200", "--idempotency-key", "rf-1")
    assert r["amount"] == 200 and r["refunded"] == 200
    assert run(capsys, "payment", "refund", ids[0], "--amount", "5", "--db", w.url, rc=1)  # key required
    assert "exceeds" in run(capsys, "payment", "refund", ids[0], "--amount", "5000", "--idempotency-key", "rf-2",
                            "--db", w.url, rc=1).err
    assert "only a succeeded" in run(capsys, "payment", "refund", ids[1], "--idempotency-key", "rf-3",
                                     "--db", w.url, rc=1).err
    assert "OPERATOR_REFUND" in actions(b) and b.verify_audit().ok
    shown = cli_json(capsys, w, "payment", "show", ids[0])
    assert shown["refunded"] == 200 and [x["refund_id"] for x in shown["refunds"]] == [r["refund_id"]]
    assert "no payment" in run(capsys, "payment", "show", "pay_" + "0" * 24, "--db", w.url, rc=1).err
    assert ids_of("--status", "refunded") == [ids[0]]
    refunds = cli_json(capsys, w, "refund", "list", "--merchant", "shop")
    assert [x["refund_id"] for x in refunds] == [r["refund_id"]] and refunds[0]["token_id"] == 42
    assert cli_json(capsys, w, "refund", "list", "--token-id", "43") == []

    # the export of 2026-01-01: its two payments (every status), CSV with a header row
    out = run(capsys, "payment", "export", "--day", "2026-01-01", "--format", "csv", "--db", w.url).out
    rows = list(csv.reader(io.StringIO(out)))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    recs = list(csv.DictReader(io.StringIO(out)))
    assert [(x["kind"], x["id"], x["status"]) for x in recs] == [
        ("payment", ids[0], "succeeded"), ("payment", ids[1], "refused")]
    assert recs[0]["merchant"] == "shop" and recs[0]["created_at_iso"] == "2026-01-01T00:00:00Z"
    jl = run(capsys, "payment", "export", "--day", "2026-01-02", "--format", "jsonl", "--db", w.url).out
    assert [json.loads(x)["id"] for x in jl.splitlines()] == [ids[2]]
    # the refund is a row of the day it was made (the CLI ran on the real clock)
    today = iso(int(__import__("time").time()))[:10]
    tj = [json.loads(x) for x in run(capsys, "payment", "export", "--day", today, "--format", "jsonl",
                                     "--merchant", "shop", "--db", w.url).out.splitlines()]
    assert [(x["kind"], x["payment_id"], x["amount"]) for x in tj] == [("refund", ids[0], 200)]
    assert run(capsys, "payment", "export", "--day", "2026-01-03", "--db", w.url).out == ",".join(
        EXPORT_COLUMNS) + "\n"
    assert "calendar date" in run(capsys, "payment", "export", "--day", "2026-02-30", "--db", w.url, rc=1).err


def test_export_to_a_file_is_atomic(world, capsys, tmp_path):
    w = world
    w.backend.pay(w.merchant_id, paycode.payment_code(SECRET, 42, T0, w.scheme_key), 10, "CNY", "f-1")
    folder = tmp_path / "exports"
    folder.mkdir()
    out = folder / "day.csv"
    run(capsys, "payment", "export", "--day", "2026-01-01", "--output", str(out), "--db", w.url)
    assert out.read_text().splitlines()[0] == ",".join(EXPORT_COLUMNS) and len(out.read_text().splitlines()) == 2
    bad = folder / "bad.csv"
    assert "no merchant" in run(capsys, "payment", "export", "--day", "2026-01-01", "--merchant", "nobody",
                                "--output", str(bad), "--db", w.url, rc=1).err
    assert sorted(p.name for p in folder.iterdir()) == ["day.csv"]  # no temp file, no half export


# ---- the admin API: the same calls on a real server ---------------------------------------------


@pytest.fixture
def admin_live(world, master_hex, tmp_path):
    admin_key = world.backend.add_admin("ops")
    server = Server(world.url, master_hex, tmp_path / "server.log")
    client = httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {admin_key}"})
    try:
        yield world, client, server
    finally:
        client.close()
        server.stop()


def test_admin_api_same_semantics(admin_live):
    w, c, server = admin_live
    code = paycode.payment_code(SECRET, 42, T0, w.scheme_key)
    pay = w.backend.pay(w.merchant_id, code, 700, "CNY", "api-1")
    # auth: an admin key, not a merchant key
    assert httpx.get(server.url + "/v1/admin/merchants", timeout=10).status_code == 401
    assert httpx.get(server.url + "/v1/admin/merchants", timeout=10,
                     headers={"Authorization": f"Bearer {w.api_key}"}).status_code == 401
    new = c.post("/v1/admin/merchants", json={"name": "web shop"}).json()
    assert new["api_key"].startswith("ptk_live_")
    assert [m["name"] for m in c.get("/v1/admin/merchants").json()] == ["shop", "web shop"]
    assert c.post(f"/v1/admin/merchants/{new['merchant_id']}/revoke").json()["status"] == "revoked"
    assert c.post(f"/v1/admin/merchants/{new['merchant_id']}/revoke").status_code == 409
    assert c.post("/v1/admin/merchants/999/rotate-key").status_code == 404
    # admins: the server's admin removes another, never the last
    c.post("/v1/admin/admins", json={"name": "temp"})
    assert c.delete("/v1/admin/admins/temp").json()["admins_left"] == 1
    assert c.delete("/v1/admin/admins/ops").status_code == 409
    # schemes
    assert c.post("/v1/admin/schemes", json={"prefix": "82"}).json()["status"] == "active"
    assert "key" not in json.dumps(c.get("/v1/admin/schemes").json()).replace('"key_', "")
    assert c.post("/v1/admin/schemes/82/retire").json()["status"] == "retired"
    # tokens, pages
    for tid in range(100, 105):
        w.backend.add_token(tid, SECRET)
    page = c.get("/v1/admin/tokens", params={"limit": 4}).json()
    assert [t["token_id"] for t in page["items"]] == [42, 100, 101, 102] and page["next"] == 102
    page = c.get("/v1/admin/tokens", params={"limit": 4, "after": page["next"]}).json()
    assert [t["token_id"] for t in page["items"]] == [103, 104] and page["next"] is None
    assert c.get("/v1/admin/tokens", params={"limit": 0}).status_code == 422
    # accounts
    cr = c.post("/v1/admin/accounts/42/credit", json={"amount": 50, "reason": "api goodwill"}).json()
    assert cr["balance"] == 100_000 - 700 + 50
    assert c.post("/v1/admin/accounts/42/debit", json={"amount": 10**9, "reason": "x"}).status_code == 409
    assert c.post("/v1/admin/accounts/42/debit", json={"amount": 5}).status_code == 422
    hist = c.get("/v1/admin/accounts/42/history").json()
    assert [(e["kind"], e["amount"]) for e in hist["items"]] == [("credit", 100_000), ("payment", -700),
                                                                  ("credit", 50)]
    assert hist["items"][2]["actor"] == "admin:ops" and hist["next"] is None
    # payments, refunds, export
    listed = c.get("/v1/admin/payments", params={"merchant": "shop", "since": "2026-01-01T00:00:00Z"}).json()
    assert [p["payment_id"] for p in listed["items"]] == [pay["payment_id"]]
    assert c.get("/v1/admin/payments", params={"since": "yesterday"}).status_code == 422
    ref = c.post(f"/v1/admin/payments/{pay['payment_id']}/refund",
                 json={"amount": 100, "idempotency_key": "api-rf-1"}).json()
    assert ref["refunded"] == 100 and ref["actor"] == "admin:ops"
    assert c.get(f"/v1/admin/payments/{pay['payment_id']}").json()["refunds"][0]["refund_id"] == ref["refund_id"]
    assert c.get("/v1/admin/refunds", params={"token_id": 42}).json()["items"][0]["amount"] == 100
    exp = c.get("/v1/admin/export", params={"day": "2026-01-01", "format": "csv"})
    assert exp.status_code == 200 and exp.headers["content-type"].startswith("text/csv")
    recs = list(csv.DictReader(io.StringIO(exp.text)))
    assert [x["id"] for x in recs] == [pay["payment_id"]]
    assert c.get("/v1/admin/export", params={"day": "2026-13-01"}).status_code == 422
    # the same actions, audited with the admin's name; no key in the server's log
    with w.backend.engine.connect() as conn:
        actors = set(conn.execute(select(AuditLog.__table__.c.actor)).scalars())
    assert "admin:ops" in actors and w.backend.verify_audit().ok
    log = server.log()
    assert new["api_key"] not in log and w.api_key not in log


def test_operator_doc_curl_examples_run(admin_live):
    import os
    import re
    import subprocess
    from pathlib import Path

    w, c, server = admin_live
    doc = (Path(__file__).resolve().parents[2] / "docs" / "OPERATOR.md").read_text()
    curls = [ln for b in re.findall(r"```sh\n(.*?)```", doc, re.S) for ln in b.splitlines() if ln.startswith("curl ")]
    assert len(curls) >= 3
    env = dict(os.environ, URL=server.url, ADMIN_KEY=c.headers["Authorization"].split()[1], TOKEN_ID="42")
    for line in curls:
        r = subprocess.run(["bash", "-c", line + ' -w "\\n%{http_code}"'], env=env, capture_output=True,
                           text=True, timeout=30)
        body, status = r.stdout.rsplit("\n", 1)
        assert status == "200", (line, status, body)
        if "export" in line:
            assert body.splitlines()[0] == ",".join(EXPORT_COLUMNS)
        else:
            assert json.loads(body)


def test_admin_api_answers_what_its_schema_admits(admin_live):
    """The constraints the schemathesis run relies on (tests/backend/test_schema.py), one by one."""
    w, c, server = admin_live
    code = paycode.payment_code(SECRET, 42, T0, w.scheme_key)
    w.backend.pay(w.merchant_id, code, 700, "CNY", "api-2")
    # an empty window is an empty page, not an error; the other filters are still checked
    q = {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    for path in ("/v1/admin/payments", "/v1/admin/refunds", "/v1/admin/accounts/42/history"):
        r = c.get(path, params=q)
        assert r.status_code == 200 and r.json() == {"items": [], "next": None}, (path, r.text)
    assert c.get("/v1/admin/payments", params=dict(q, merchant="nobody")).status_code == 404
    assert c.get("/v1/admin/accounts/99/history", params=q).status_code == 404
    assert len(c.get("/v1/admin/payments", params={"since": "0"}).json()["items"]) == 1
    # what the domain refuses, the schema refuses first (422 from the schema, with its rule)
    spec = c.get("/openapi.json").json()
    for bad in ("1970-01-01T00:00:00+01:00", "2026-02-29T00:00:00Z", "2026-01-01T00:00:00", "١٢"):
        assert c.get("/v1/admin/payments", params={"since": bad}).status_code == 422, bad
    assert c.get("/v1/admin/payments", params={"since": "2028-02-29T23:59:59-23:59"}).status_code == 200
    assert c.get("/v1/admin/export", params={"day": "2100-02-29"}).status_code == 422  # not a leap year
    assert c.get("/v1/admin/export", params={"day": "2000-02-29"}).status_code == 200
    assert c.post("/v1/admin/schemes", json={"prefix": "30"}).status_code == 422  # another wallet's start
    assert c.post("/v1/admin/schemes", json={"prefix": "31"}).status_code == 200
    assert c.post("/v1/admin/merchants", json={"name": "tab\there"}).status_code == 422
    assert c.get("/v1/admin/accounts/42/history", params={"after": "x"}).status_code == 422
    assert "pattern" in spec["components"]["schemas"]["SchemeIn"]["properties"]["prefix"]
    # a JSON number without a fraction is an integer
    r = c.post("/v1/admin/accounts/42/credit", json={"amount": 50.0, "reason": "float"})
    assert r.status_code == 200 and r.json()["amount"] == 50
    assert c.post("/v1/admin/accounts/42/credit", json={"amount": 50.5, "reason": "x"}).status_code == 422
    # an id that is not a payment id names no payment
    assert c.get("/v1/admin/payments/null").status_code == 404
    assert c.post("/v1/admin/payments/null/refund", json={"idempotency_key": "k1"}).status_code == 404


def test_admin_routes_share_the_bad_key_throttle(admin_live):
    """Unknown keys on /v1/admin are charged to the client address like any other: past the
    burst, 429 with Retry-After, never an endless stream of 401s."""
    w, c, server = admin_live
    seen = []
    for i in range(40):
        r = httpx.get(server.url + "/v1/admin/merchants", timeout=10,
                      headers={"Authorization": f"Bearer ptk_admin_wrong{i}"})
        seen.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) >= 1 and r.json()["error"] == "throttled"
            break
    assert seen[0] == 401 and seen[-1] == 429, seen
