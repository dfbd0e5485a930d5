"""schemathesis (all checks) against a live ``paytoken serve``: the OpenAPI schema tells the truth,
on every route (the merchants', the desk's, the operators' /v1/admin and the online factory's).

Bounded: a fixed number of examples per operation and a response-time limit; the number of
operations and checks run goes to the test's output (and reports/schemathesis.json).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import paycode
import pytest
from paytoken.backend.service import Backend
from paytoken.backend.store.db import make_engine

from .conftest import SECRET, Server

MAX_EXAMPLES = int(os.environ.get("PAYTOKEN_SCHEMA_EXAMPLES", "12"))
SEED = os.environ.get("PAYTOKEN_SCHEMA_SEED", "1")  # another seed explores other cases

CONFIG = """
# A body over the server's 16 KiB is rejected with 413 (declared on every operation) before
# it is parsed: for schema-violating data (say, more items than maxItems) that is a rejection
# too. Schemathesis's default list of rejection statuses, plus 413.
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]

[dictionaries.tokens]
values = [42, 43]

[dictionaries.payments]
values = ["{payment}"]

# The calls that end a credential or a token act on victims made for them (merchant "victim", admin
# "victim", token 44), so the shop's API key, the admin key and tokens 42 and 43 keep working
# for every other operation. The first block that sets headers or parameters wins.
[[operations]]
include-path-regex = "^/v1/admin/merchants/[^/]+/"
headers = { Authorization = "Bearer ${PT_ADMIN_KEY}" }
parameters = { "path.merchant_id" = {victim_merchant} }

[[operations]]
include-path-regex = "^/v1/admin/admins/"
headers = { Authorization = "Bearer ${PT_ADMIN_KEY}" }
parameters = { "path.name" = "victim" }

[[operations]]
include-path-regex = "^/v1/tokens/[^/]+/revoke$"
headers = { Authorization = "Bearer ${PT_ADMIN_KEY}" }
parameters = { "path.token_id" = 44 }

[[operations]]
include-path-regex = "^/v1/payments"
headers = { Authorization = "Bearer ${PT_API_KEY}" }
parameters = { "path.payment_id" = { dictionary = "payments", probability = 0.5 } }

[[operations]]
include-path-regex = "^/v1/(online-codes|wallet)$"
headers = { Authorization = "Bearer ${PT_WALLET_KEY}" }

[[operations]]
include-path-regex = "^/v1/(tokens|admin|factory)/"
headers = { Authorization = "Bearer ${PT_ADMIN_KEY}" }
parameters = { "path.token_id" = { dictionary = "tokens", probability = 0.5 }, "path.payment_id" = { dictionary = "payments", probability = 0.5 } }
"""


@pytest.mark.timeout(300)
def test_schemathesis_all_checks_pass_against_the_live_server(sqlite_template, ring, master_hex, tmp_path):
    db = tmp_path / "paytoken.db"
    shutil.copy(sqlite_template, db)
    url = f"sqlite:///{db}"
    backend = Backend(make_engine(url), ring)
    backend.add_scheme("81")
    backend.add_token(42, SECRET, sync_key=bytes(range(50, 70)))
    backend.credit(42, 100_000)
    backend.add_token(43, SECRET)
    backend.credit(43, 100_000)
    mid, api_key = backend.add_merchant("shop")
    code = paycode.payment_code(SECRET, 43, int(time.time()), backend.scheme_keys()["81"])
    payment = backend.pay(mid, code, 5000, "CNY", "st-1")
    assert payment["status"] == "succeeded", payment
    admin_key = backend.add_admin("ops")
    backend.add_scheme("71", online=True)
    wallet_key = backend.issue_wallet_key(42)
    backend.add_admin("victim")
    victim_merchant, _ = backend.add_merchant("victim")
    backend.add_token(44, SECRET)
    backend.engine.dispose()
    # All of schemathesis comes from one address, and its ignored_auth check wants a 401 for
    # every request without a key: a bigger bad-key burst for this server, and a bigger
    # online-code budget for its one wallet (the throttle itself:
    # tests/backend/test_http_rules.py).
    server = Server(url, master_hex, tmp_path / "server.log", env={"PAYTOKEN_BAD_KEY_BURST": "100000",
                                                                       "PAYTOKEN_WALLET_BURST": "100000"})
    cfg = tmp_path / "schemathesis.toml"
    cfg.write_text(CONFIG.replace("{payment}", payment["payment_id"]).replace("{victim_merchant}", str(victim_merchant)))
    report, events = tmp_path / "st.json", tmp_path / "st.ndjson"
    st = Path(sys.executable).with_name("st")
    env = dict(os.environ, PT_API_KEY=api_key, PT_ADMIN_KEY=admin_key, PT_PAYMENT=payment["payment_id"],
               PT_WALLET_KEY=wallet_key)
    try:
        r = subprocess.run(
            [str(st), "--config-file", str(cfg), "run", server.url + "/openapi.json", "--checks", "all",
             "--max-examples", str(MAX_EXAMPLES), "--max-response-time", "5", "--seed", SEED, "--workers", "1",
             "--request-timeout", "10", "--report", "json,ndjson", "--report-json-path", str(report),
             "--report-ndjson-path", str(events),
             "--no-color"],
            env=env, capture_output=True, text=True, timeout=280, cwd=tmp_path)  # its cache stays there
    finally:
        server.stop()
    print(r.stdout[-6000:])
    assert r.returncode == 0, r.stdout[-12000:] + r.stderr[-2000:] + server.log()[-3000:]
    assert "Traceback" not in server.log()
    data = json.loads(report.read_text())
    assert data["complete"] and data["operations"]["tested"] == data["operations"]["total"] >= 39
    assert data["test_cases"]["with_failures"] == 0 and not data["failures"] and not data["errors"]
    # the keys it was given kept working to the end (no operation got only 401s)
    assert not data["warnings"]["missing_auth"], data["warnings"]
    checks: dict[str, int] = {}

    def walk(x):
        if isinstance(x, dict):
            if "name" in x and "status" in x and isinstance(x.get("name"), str) and x["name"] in NAMES:
                checks[x["name"]] = checks.get(x["name"], 0) + 1
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    for line in events.read_text().splitlines():
        walk(json.loads(line))
    print(f"schemathesis: {data['operations']['tested']} operations, {data['test_cases']['generated']} test "
          f"cases, {sum(checks.values())} checks run: {json.dumps(checks, sort_keys=True)}")
    assert len(checks) >= 10 and sum(checks.values()) > 500, checks


NAMES = {"not_a_server_error", "status_code_conformance", "content_type_conformance",
         "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
         "positive_data_acceptance", "missing_required_header", "unsupported_method",
         "allow_header_conformance", "use_after_free", "ensure_resource_availability", "ignored_auth",
         "object_level_authorization", "max_response_time"}
