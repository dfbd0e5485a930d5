"""The simulated year on a shorter horizon: real firmware clock path, real verification.

The full year (``paytoken simulate-year``, docs/YEAR.md) runs under PAYTOKEN_SOAK=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from paytoken.story import year
from PIL import Image

SOAK = bool(os.environ.get("PAYTOKEN_SOAK"))
DAYS = 365.0 if SOAK else 40.0
TOKENS = 20 if SOAK else 6


@pytest.fixture(scope="module")
def report() -> dict:
    return year.simulate(tokens=TOKENS, days=DAYS, seed=7)


def test_every_genuine_payment_accepted_without_resync(report):
    assert report["payments"] > 50 * TOKENS * DAYS / 365 * 0.5  # the tokens really paid
    assert report["wrong_screens"] == {}
    assert report["refusals"] == {}
    assert report["acceptance_rate"] == 1.0
    assert report["accepted"] == report["payments"]
    assert report["resyncs"] == 0


def test_learned_drift_tracks_the_truth(report):
    err = report["learned_drift_error_s"]
    # The backend learns (token - server) from the middle of the code's step, seen a
    # few seconds of scan + network after the press: within a step of the truth,
    # a few seconds late on average.
    assert err["max_abs"] < 30
    assert -8 < err["mean"] < 2
    for tok in report["per_token"]:
        assert abs(tok["learned_minus_true_s"]) < 30


def test_the_crystals_really_drift_and_the_firmware_corrects(report):
    for tok in report["per_token"]:
        # The raw RTC gains about ppm x elapsed (plus the temperature term, which is
        # never positive and at most 0.034 * 19^2 ppm here): an independent check of
        # the model's rate as read through the driver.
        span = (DAYS + 1) * 86400 + 600
        lo = (tok["ppm_nominal"] - 0.034 * 19**2) * span * 1e-6 - 2
        hi = tok["ppm_nominal"] * span * 1e-6 + 2
        assert lo <= tok["raw_offset_end_s"] <= hi, tok
        # The station's measurement over a 600 s burn-in errs by a few ppm at most.
        assert abs(tok["ppm_measured"] - tok["ppm_nominal"]) < 8, tok
    worst_raw = max(abs(t["raw_offset_end_s"]) for t in report["per_token"])
    worst_corrected = max(abs(t["corrected_offset_end_s"]) for t in report["per_token"])
    assert worst_corrected < worst_raw


def test_the_metrics_see_a_clock_that_runs_away():
    # A negative control: crystals off by hundreds of ppm, paying rarely, leave the
    # window; the backend refuses the first code as expired and resyncs on the next.
    r = year.simulate(tokens=2, days=20, seed=3, ppm_range=500, burn_in=0, rate_per_day=(0.7, 0.8))
    assert r["refusals"].get("CODE_EXPIRED", 0) == r["resyncs"] > 0
    assert r["acceptance_rate"] < 1.0
    assert r["accepted"] > 0  # the resync let later codes through


def test_same_seed_same_tokens():
    a = year.simulate(tokens=2, days=2, seed=11)
    b = year.simulate(tokens=2, days=2, seed=11)
    strip = ("token_id",)
    for x, y in zip(a["per_token"], b["per_token"], strict=True):
        assert {k: v for k, v in x.items() if k not in strip} == {k: v for k, v in y.items() if k not in strip}


def test_bad_parameters_are_refused():
    with pytest.raises(year.SimulationError, match="tokens"):
        year.simulate(tokens=0)
    with pytest.raises(year.SimulationError, match="burn-in"):
        year.simulate(tokens=1, days=1, burn_in=5)


def test_cli_json_and_plot(tmp_path):
    png = tmp_path / "drift.png"
    out = subprocess.run(
        [sys.executable, "-m", "paytoken", "simulate-year", "--tokens", "2", "--days", "3",
         "--seed", "5", "--jobs", "2", "--json", "--plot", str(png)],
        capture_output=True, text=True, timeout=300, check=True)
    rep = json.loads(out.stdout)
    assert rep["tokens"] == 2 and rep["days"] == 3
    assert rep["acceptance_rate"] == 1.0
    assert "series" not in rep
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 800


def test_cli_refuses_bad_input():
    out = subprocess.run([sys.executable, "-m", "paytoken", "simulate-year", "--tokens", "0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "paytoken: simulate-year: argument --tokens: 0 is out of range (1 to 1000)" in out.stderr


def test_a_mixed_fleet_moves_to_format_2_mid_year():
    # Every other token on format 2 from the factory, the rest moved at the desk from day
    # 20 (within 30 days), then scheme 81 closed: every genuine payment accepted, in both
    # formats, and a format 1 code then gets "unknown prefix". Through the CLI.
    days = 365 if SOAK else 60
    out = subprocess.run(
        [sys.executable, "-m", "paytoken", "simulate-year", "--tokens", "6", "--days", str(days),
         "--seed", "9", "--migrate-day", str(days // 3), "--json"],
        capture_output=True, text=True, timeout=600, check=True)
    rep = json.loads(out.stdout)
    assert rep["migration"]["moved"] == 3 and rep["migration"]["old_code_after_close"] == ["unknown prefix 81"]
    assert rep["refusals"] == {} and rep["wrong_screens"] == {}
    assert rep["acceptance_rate"] == 1.0 and rep["accepted"] == rep["payments"]
    f1, f2 = rep["by_format"]["1"], rep["by_format"]["2"]
    assert f1["payments"] > 10 and f2["payments"] > f1["payments"]  # both formats really paid
    assert f1["accepted"] == f1["payments"] and f2["accepted"] == f2["payments"]
    with pytest.raises(year.SimulationError, match="migration day"):
        year.simulate(tokens=1, days=10, migrate_day=5)
