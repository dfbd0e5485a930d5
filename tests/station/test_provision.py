"""Provisioning against virtual tokens (stock mpremote/pyserial) and a real issuer database."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from paytoken import vhw
from paytoken.station import ops
from paytoken.station.provision import Station
from paytoken.station.transport import Device
from stationkit import (
    assert_consistent,
    assert_no_secret,
    paytoken,
    reports,
    token_config,
)
from vdevkit import mpremote
from waits import STEP, bound


def _failures(r) -> str:
    try:
        errs = [f"{x['port']}: {x['step']}: {x['error']}" for x in json.loads(r.stdout)
                if x["status"] == "failed"]
    except (ValueError, KeyError, TypeError):
        errs = [r.stdout[-1500:]]
    fails = [ln for ln in r.stderr.splitlines() if ": failed" in ln]
    return "\n".join(errs + fails) + "\n--- stderr tail ---\n" + r.stderr[-1500:]


def test_eight_tokens_in_parallel_on_postgresql(tokens, pg_issuer, tmp_path: Path) -> None:
    toks = tokens(8)
    rep_dir = tmp_path / "reports"
    r = paytoken("provision", "--all", "--board", "sim", "--report-dir", str(rep_dir), "--json",
                 env=pg_issuer.env())
    # the per-token errors first: with eight tokens the progress lines bury them
    assert r.returncode == 0, _failures(r)
    out = json.loads(r.stdout)
    assert sorted(x["port"] for x in out) == sorted(t.port for t in toks)  # --all found them
    assert all(x["status"] == "provisioned" for x in out), [x["error"] for x in out]
    ids = assert_consistent(pg_issuer, [t.flash for t in toks])
    assert sorted(ids) == sorted(x["token_id"] for x in out)
    for x in out:
        # the station's own bound (ops.set_clock_utc): 250 ms beyond what it could measure;
        # a busy host widens the measurement, never moves the truth outside it
        assert abs(x["offset_ms"]) <= 250 + x["offset_uncertainty_ms"], x
        assert x["ppm"] == 0.0  # no burn-in: not measured
        assert len(x["verified_times"]) >= 9
    # the issuer verifies a code made from the token's own config (read from its flash)
    import paycode

    cfg = token_config(toks[0].flash)
    code = paycode.payment_code(cfg["secret"], cfg["token_id"], int(time.time()),
                                cfg["scheme_key"], cfg["prefix"])
    assert pg_issuer.backend.verify(code).ok

    # a second run is idempotent: every token is skipped, nothing new in the database
    before = pg_issuer.rows()
    r2 = paytoken("provision", "--all", "--board", "sim", "--report-dir", str(rep_dir), "--json",
                  env=pg_issuer.env())
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert {x["status"] for x in json.loads(r2.stdout)} == {"skipped"}
    assert len(pg_issuer.rows()) == len(before)

    secrets_ = [token_config(t.flash)["secret"] for t in toks]
    secrets_ += [token_config(t.flash)["sync_key"] for t in toks]
    assert len(reports(rep_dir)) == 16
    assert_no_secret(secrets_, r.stdout, r.stderr, r2.stdout, r2.stderr,
                     paths=[rep_dir] + [Path(str(t.flash) + ".stderr") for t in toks])


def test_locked_token_refuses_the_repl(tokens, issuer, tmp_path: Path) -> None:
    (tok,) = tokens(1)
    st = Station(issuer.backend, board="sim")
    assert st.provision(tok.port).status == "provisioned"
    t0 = time.monotonic()
    r = mpremote(tok.port, "exec", "print(7*6)", timeout=60)
    assert r.returncode != 0  # the stock mpremote fails cleanly, no hang
    assert "42" not in r.stdout
    assert time.monotonic() - t0 < bound(30)
    with Device(tok.port, timeout=bound(STEP)) as dev:
        assert ops.info(dev).locked  # and the token still answers


def test_wrong_board_and_firmware_mismatch_refused(tokens, issuer, tmp_path: Path) -> None:
    fw = tmp_path / "fw-old"
    shutil.copytree(Path(__file__).resolve().parents[2] / "firmware", fw,
                    ignore=shutil.ignore_patterns("__pycache__"))
    text = (fw / "fwversion.py").read_text().replace('VERSION = "1.0.0"', 'VERSION = "0.9.0"')
    (fw / "fwversion.py").write_text(text)
    a, = tokens(1)
    b, = tokens(1, firmware_dir=fw)
    env = issuer.env()
    r = paytoken("provision", "--port", a.port, "--board", "sim-128x32", env=env)
    assert r.returncode == 2
    assert "board sim, not sim-128x32" in r.stdout and "paytoken deploy" in r.stdout
    r = paytoken("provision", "--port", b.port, "--board", "sim", env=env)
    assert r.returncode == 2
    assert "firmware 0.9.0 on the token, 1.0.0 on this station" in r.stdout
    assert "paytoken deploy" in r.stdout
    assert issuer.rows() == []  # nothing allocated, nothing left
    assert token_config(a.flash) is None and token_config(b.flash) is None
    # deploy, then it goes through
    r = paytoken("deploy", "--port", b.port, "--board", "sim")
    assert r.returncode == 0, r.stderr
    r = paytoken("provision", "--port", b.port, "--board", "sim", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_consistent(issuer, [b.flash])


def test_time_zone_makes_no_difference(tokens, issuer, tmp_path: Path, monkeypatch) -> None:
    results = {}
    for tz in ("Asia/Shanghai", "America/Los_Angeles"):
        monkeypatch.setenv("TZ", tz)  # the virtual token's interpreter inherits it too
        (tok,) = tokens(1)
        r = paytoken("provision", "--port", tok.port, "--board", "sim", "--json",
                     env=issuer.env(TZ=tz))
        assert r.returncode == 0, r.stdout + r.stderr
        (x,) = json.loads(r.stdout)
        now = time.time()
        assert abs(x["clock_set_utc"] - now) < 60  # UTC, not UTC+8 or UTC-8
        assert abs(x["offset_ms"]) <= 250 + x["offset_uncertainty_ms"], x
        # the RTC model's registers, as UTC seconds (whole seconds: one either side),
        # between host clock readings taken around the read
        t0 = time.time()
        rtc = vhw.rtc_time(tok.hw)
        t1 = time.time()
        assert rtc is not None and t0 - 2 < rtc < t1 + 2
        cfg = token_config(tok.flash)
        assert cfg["ref_time"] == x["clock_set_utc"]
        r = paytoken("cross-verify", "--port", tok.port, "--steps", "12", "--start", "1800000000",
                     "--json", env=issuer.env(TZ=tz))
        assert r.returncode == 0, r.stdout + r.stderr
        results[tz] = json.loads(r.stdout)["mismatches"]
        with Device(tok.port, timeout=bound(STEP)) as dev:
            t0 = time.time()
            t_tok = ops.info(dev).time
            t1 = time.time()
        assert t0 - 2 < t_tok < t1 + 2  # the token read its clock between t0 and t1
    assert results == {"Asia/Shanghai": [], "America/Los_Angeles": []}


def test_burn_in_measures_the_crystal_error(tokens, issuer) -> None:
    (tok,) = tokens(1)
    vhw.set_rtc(tok.hw, ppm=500.0)  # a bad crystal, so that 4 s of burn-in see it
    rep = Station(issuer.backend, board="sim", burn_in=4).provision(tok.port)
    assert rep.status == "provisioned", rep.error
    assert rep.ppm_resolution is not None and rep.ppm_measured is not None
    print("ppm", rep.ppm_measured, "bound", rep.ppm_resolution, "stored", rep.ppm)
    # the edge timing is a bound, not an estimate: the truth lies inside it however
    # busy the host was (a little slack for float rounding of the clocks)
    assert abs(rep.ppm_measured - 500) <= rep.ppm_resolution + 1.0, rep
    # stored when it is known well enough to help, else 0 (the issuer learns drift)
    if rep.ppm_resolution <= 250:
        assert rep.ppm == rep.ppm_measured
    else:
        assert rep.ppm == 0.0
    cfg = token_config(tok.flash)
    assert cfg["ppm"] == rep.ppm and cfg["ref_time"] == rep.clock_set_utc


def test_stored_correction_only_when_it_helps() -> None:
    assert ops.ppm_to_store(12.0, 4.0) == 12.0  # known to a few ppm: stored
    assert ops.ppm_to_store(500.0, 200.0) == 500.0  # clearly off: stored
    assert ops.ppm_to_store(60.0, 70.0) == 0.0  # noise: a wrong correction hurts
    assert ops.ppm_to_store(-30.0, 16.0) == 0.0


def test_device_error_mid_provisioning_is_clear_and_leaks_nothing(tokens, issuer, monkeypatch) -> None:
    from paytoken.station import provision

    made: list[bytes] = []
    real = provision.secrets.token_bytes

    def recording(n: int) -> bytes:
        b = real(n)
        made.append(b)
        return b

    monkeypatch.setattr(provision.secrets, "token_bytes", recording)
    (tok,) = tokens(1)
    (tok.flash / "paytoken.cfg.tmp").mkdir()  # the config's temp file cannot be written
    rep = Station(issuer.backend, board="sim").provision(tok.port)
    assert rep.status == "failed" and rep.step == "config"
    assert "writing the config failed" in rep.error and "EISDIR" in rep.error
    assert len(made) == 2  # the secret and the sync key
    assert_no_secret(made, rep.error, json.dumps(rep.__dict__))
    assert issuer.rows() == []  # its pending record was discarded
    (tok.flash / "paytoken.cfg.tmp").rmdir()
    rep = Station(issuer.backend, board="sim").provision(tok.port)
    assert rep.status == "provisioned", rep.error
    assert_consistent(issuer, [tok.flash])


def test_reports_of_one_second_never_overwrite_each_other(issuer, tmp_path: Path) -> None:
    """Two runs of one token in one second, or ports whose names map alike, each keep their
    own report: written whole under a private temp name, then linked to a free name."""
    import os
    import stat
    from concurrent.futures import ThreadPoolExecutor

    from paytoken.station.provision import TokenReport

    d = tmp_path / "reports"
    station = Station(issuer.backend, board="sim", report_dir=d)
    reps = [TokenReport(port=p, board="sim", token_id=tid, error=f"run {i}", started_at=1_767_225_600.5)
            for i, (p, tid) in enumerate([("a", 42)] * 6 + [("/dev/pts/1", None), ("dev/pts/1", None)])]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(station._record, reps))
    files = sorted(d.glob("token-*.json"))
    assert len(files) == 8 and not list(d.glob(".*tmp"))
    assert {json.loads(p.read_text())["error"] for p in files} == {f"run {i}" for i in range(8)}
    names = {p.name for p in files}
    assert {"token-00000042-1767225600.json", "token-00000042-1767225600_6.json",
            "token-dev_pts_1-1767225600.json", "token-dev_pts_1-1767225600_2.json"} <= names
    assert all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in files)
    audit = [json.loads(line)["report"] for line in (d / "audit.jsonl").read_text().splitlines()]
    assert sorted(audit) == sorted(names)


def test_the_ppm_line_says_why_zero_is_stored() -> None:
    """provision's summary never shows a bare "+0.00 ppm": it says when the burn-in did not
    run, or measured a rate too coarse to store."""
    from types import SimpleNamespace

    from paytoken.commands.desk import _ppm_text

    assert _ppm_text(SimpleNamespace(ppm_measured=None, ppm=0.0, ppm_resolution=None)) == \
        "crystal error not measured (no --burn-in): 0 ppm stored"
    coarse = _ppm_text(SimpleNamespace(ppm_measured=3.2, ppm=0.0, ppm_resolution=10.0))
    assert coarse.startswith("+3.20 ± 10.00 ppm measured, too coarse to store: 0 ppm stored")
    assert _ppm_text(SimpleNamespace(ppm_measured=12.5, ppm=12.5, ppm_resolution=0.5)) == \
        "+12.50 ppm stored (± 0.50)"
