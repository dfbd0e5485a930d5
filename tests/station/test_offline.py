"""The offline factory end to end on virtual tokens: a batch from the issuer, provisioning
that never reaches it, a PSKC file read by python-pskc, the import, a payment."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path

import pskc as pypskc  # python-pskc, the independent PSKC parser
import pytest
from paytoken import pskc, scan, vhw
from paytoken.backend.store.models import ACTIVE, PENDING
from paytoken.batch import sync_key as derive_sync_key
from paytoken.station import ops
from paytoken.station.offline import OfflineIssuer
from stationkit import assert_no_secret, paytoken, reports, token_config


def _station_env() -> dict[str, str]:
    # The station holds no master key and no database URL: prove it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYTOKEN_")
           or k == "PAYTOKEN_VDEV_REGISTRY"}
    env["PAYTOKEN_DB"] = "sqlite:////nonexistent/issuer.db"
    return env


def _code_on_panel(tok, png: Path, timeout: float = 60) -> str:
    """Press the button and read the code off the token's panel with zxing-cpp."""
    vhw.press(tok.hw)
    deadline = time.monotonic() + timeout
    err = "no picture yet"
    while time.monotonic() < deadline:
        if vhw.panel(tok.hw)[3]:
            vhw.snapshot(tok.hw, png)
            try:
                return scan.read_qr(png)
            except scan.ScanError as e:
                err = str(e)
        time.sleep(0.3)
    raise AssertionError(f"no code on the panel: {err}")


def test_offline_factory_end_to_end(tokens, issuer, tmp_path: Path) -> None:
    toks = tokens(2)
    psk_file, batch, out = tmp_path / "factory.psk", tmp_path / "batch.json", tmp_path / "tokens.pskc"
    rep_dir = tmp_path / "reports"

    # the issuer hands out a batch (and makes the pre-shared key, which did not exist)
    r = paytoken("batch", "create", "--count", "4", "--prefix", "81", "--psk-file", str(psk_file),
                 "--out", str(batch), "--json", env=issuer.env())
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)
    assert b["psk_created"] and b["count"] == 4
    assert stat.S_IMODE(psk_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(batch.stat().st_mode) == 0o600
    batch_ids = set(range(b["first_id"], b["last_id"] + 1))
    assert {r["id"]: r["status"] for r in issuer.rows()} == dict.fromkeys(batch_ids, PENDING)
    psk = pskc.read_psk_file(psk_file)
    assert psk.hex() not in batch.read_text()

    # the station provisions both tokens without the issuer
    args = ["provision", *[a for t in toks for a in ("--port", t.port)], "--board", "sim",
            "--offline-batch", str(batch), "--pskc-out", str(out), "--psk-file", str(psk_file),
            "--report-dir", str(rep_dir), "--json"]
    r1 = paytoken(*args, env=_station_env())
    assert r1.returncode == 0, r1.stderr[-3000:]
    got = json.loads(r1.stdout)
    assert [x["status"] for x in got] == ["provisioned", "provisioned"], [x["error"] for x in got]
    ids = [x["token_id"] for x in got]
    assert len(set(ids)) == 2 and set(ids) <= batch_ids
    cfgs = {token_config(t.flash)["token_id"]: token_config(t.flash) for t in toks}
    assert set(cfgs) == set(ids) and all(c["locked"] for c in cfgs.values())
    assert all(len(x["verified_times"]) >= 9 for x in got)  # cross-verified locally
    # the issuer has not activated anything yet
    assert {r["status"] for r in issuer.rows()} == {PENDING}
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    # python-pskc reads the station's file to the tokens' own secrets and parameters
    theirs = pypskc.PSKC(str(out))
    theirs.encryption.key = psk
    assert sorted(k.serial for k in theirs.keys) == sorted(f"{i:08d}" for i in ids)
    for k in theirs.keys:
        cfg = cfgs[int(k.serial)]
        assert k.check() and k.secret == cfg["secret"]
        assert k.algorithm == "urn:ietf:params:xml:ns:keyprov:pskc:totp"
        assert (k.response_length, k.response_encoding, k.time_interval, k.time_drift) == (6, "DECIMAL", 30, 0)
        assert derive_sync_key(OfflineIssuer(batch, psk, out)._sync_master, int(k.serial)) == cfg["sync_key"]

    # a re-run skips both: the station's ledger knows they are done
    r2 = paytoken(*args, env=_station_env())
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert [x["status"] for x in json.loads(r2.stdout)] == ["skipped", "skipped"]
    assert len(pskc.read_file(out, psk)) == 2

    # the import activates both, in one go; a second import changes nothing
    r3 = paytoken("token", "import", "--pskc", str(out), "--psk-file", str(psk_file), "--json",
                  env=issuer.env())
    assert r3.returncode == 0, r3.stderr
    assert sorted(json.loads(r3.stdout)["imported"]) == sorted(ids)
    status = {r["id"]: r["status"] for r in issuer.rows()}
    assert all(status[i] == ACTIVE for i in ids)
    assert [status[i] for i in batch_ids - set(ids)] == [PENDING] * 2  # the spare ids
    for i in ids:
        assert issuer.secret_of(i) == cfgs[i]["secret"]
        row = next(r for r in issuer.rows() if r["id"] == i)
        assert issuer.keyring.open(row["sync_key_enc"], f"token:{i}:sync") == cfgs[i]["sync_key"]
    audit_rows = issuer.backend.verify_audit().rows
    r4 = paytoken("token", "import", "--pskc", str(out), "--psk-file", str(psk_file), "--json",
                  env=issuer.env())
    assert r4.returncode == 0, r4.stderr
    assert json.loads(r4.stdout) == {"imported": [], "already": sorted(ids)}
    assert issuer.backend.verify_audit().rows == audit_rows

    # a code read off the first token's panel pays through the backend
    tok = next(t for t in toks if token_config(t.flash)["token_id"] == ids[0])
    issuer.backend.credit(ids[0], 5000)
    mid, _key = issuer.backend.add_merchant("offline test shop")
    code = _code_on_panel(tok, tmp_path / "panel.png")
    res = issuer.backend.pay(mid, code, 1250, "CNY", "order-offline-1")
    assert res["status"] == "succeeded" and res["token_id"] == ids[0], res
    assert issuer.backend.token_info(ids[0])["balance"] == 5000 - 1250

    # nothing secret anywhere the station or the issuer printed or wrote in the clear
    secrets_ = [c["secret"] for c in cfgs.values()] + [c["sync_key"] for c in cfgs.values()]
    secrets_ += [psk, cfgs[ids[0]]["scheme_key"]]
    assert len(reports(rep_dir)) == 4
    assert_no_secret(secrets_, r.stdout, r.stderr, r1.stdout, r1.stderr, r2.stdout, r2.stderr,
                     r3.stdout, r3.stderr, r4.stdout, r4.stderr,
                     paths=[rep_dir, batch, out, Path(str(batch) + ".used")])


def test_ledger_never_hands_an_id_out_twice(issuer, tmp_path: Path) -> None:
    from paytoken.backend.service.batches import create_batch
    from paytoken.batch import seal

    psk = os.urandom(16)
    b, key, master = create_batch(issuer.backend, "81", 6, pskc.psk_id(psk))
    path = tmp_path / "batch.json"
    path.write_bytes(seal(b, key, master, psk))
    # two stations' worth of issuers on one batch file, many threads
    issuers = [OfflineIssuer(path, psk, tmp_path / "t.pskc") for _ in range(2)]
    got: list[int] = []
    errors: list[str] = []

    def take(i: int) -> None:
        try:
            got.append(issuers[i % 2].allocate(f"t{i}")[0])
        except ops.OpsError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=take, args=(i,)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(b.ids())
    assert len(errors) == 3 and all("is used up (6 of 6 ids spent)" in e for e in errors)
    issuers[0].discard(got[0], "t")
    assert issuers[1].used()[got[0]] == "discarded"  # spent all the same
    with pytest.raises(ops.OpsError, match="wrong pre-shared key"):
        OfflineIssuer(path, os.urandom(16), tmp_path / "t.pskc")
    doc = json.loads(path.read_text())
    doc["count"] = 7
    path.write_text(json.dumps(doc))
    with pytest.raises(ops.OpsError, match="the file was altered"):
        OfflineIssuer(path, psk, tmp_path / "t.pskc")


def test_cut_after_the_lock_is_redone_with_a_fresh_id(tokens, issuer, tmp_path: Path, monkeypatch) -> None:
    from paytoken.backend.service.batches import create_batch
    from paytoken.batch import seal
    from paytoken.station.provision import Station

    psk = os.urandom(16)
    b, key, master = create_batch(issuer.backend, "81", 3, pskc.psk_id(psk))
    path, out = tmp_path / "batch.json", tmp_path / "tokens.pskc"
    path.write_bytes(seal(b, key, master, psk))
    (tok,) = tokens(1)
    off = OfflineIssuer(path, psk, out)

    def cut(*_a, **_kw) -> None:  # the PSKC write fails: the token is locked, not recorded
        raise ops.OpsError("activate", "disk full")

    monkeypatch.setattr(off, "activate", cut)
    rep = Station(off, board="sim", prefix="81").provision(tok.port)
    assert rep.status == "failed" and rep.step == "activate"
    first = rep.token_id
    assert token_config(tok.flash)["locked"] and off.used() == {first: "allocated"}
    monkeypatch.undo()

    off = OfflineIssuer(path, psk, out)
    rep = Station(off, board="sim", prefix="81").provision(tok.port)
    assert rep.status == "provisioned", rep.error
    assert "was locked but pending: unlocked, redone" in rep.recovered
    assert rep.token_id != first and b.holds(rep.token_id)
    assert off.used() == {first: "discarded", rep.token_id: "done"}
    assert [p.serial for p in pskc.read_file(out, psk)] == [f"{rep.token_id:08d}"]
    assert token_config(tok.flash)["token_id"] == rep.token_id
    # a token of another batch (or of none) is not unlocked here
    other = tmp_path / "other.json"
    b2, key2, master2 = create_batch(issuer.backend, "81", 1, pskc.psk_id(psk))
    other.write_bytes(seal(b2, key2, master2, psk))
    rep = Station(OfflineIssuer(other, psk, tmp_path / "o.pskc"), board="sim", prefix="81").provision(tok.port)
    assert rep.status == "failed" and rep.step == "check"
    assert "unknown to this database" in rep.error


def test_batches_and_import_on_postgresql(pg_issuer, tmp_path: Path) -> None:
    from paytoken.backend import BackendError
    from paytoken.backend.service.batches import create_batch, import_tokens

    psk = os.urandom(16)
    b, _key, master = create_batch(pg_issuer.backend, "81", 50, pskc.psk_id(psk))
    secrets_ = {i: os.urandom(20) for i in b.ids()}
    packages = [pskc.KeyPackage(serial=f"{i:08d}", secret=s, drift=0) for i, s in secrets_.items()]
    data = pskc.dumps(packages, psk)
    bad = packages[:10] + [pskc.KeyPackage(serial=f"{b.last_id + 1:08d}", secret=os.urandom(20))]
    with pytest.raises(BackendError, match="outside every batch"):
        import_tokens(pg_issuer.backend, bad, pskc.psk_id(psk))
    assert {r["status"] for r in pg_issuer.rows()} == {PENDING}  # all or none
    r = import_tokens(pg_issuer.backend, pskc.loads(data, psk), pskc.psk_id(psk))
    assert sorted(r.imported) == list(b.ids()) and not r.already
    assert pg_issuer.secret_of(b.first_id) == secrets_[b.first_id]
    row = next(x for x in pg_issuer.rows() if x["id"] == b.last_id)
    assert pg_issuer.keyring.open(row["sync_key_enc"], f"token:{b.last_id}:sync") == \
        derive_sync_key(master, b.last_id)
    assert import_tokens(pg_issuer.backend, pskc.loads(data, psk), pskc.psk_id(psk)).already == list(b.ids())
    assert pg_issuer.backend.verify_audit().ok
