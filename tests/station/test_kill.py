"""The kill campaign: tokens die at random points of provisioning, then the run is redone.

Each cycle takes a factory-fresh token (config wiped, hard reset), starts provisioning,
kills the token at a random moment (its power cut through the virtual hardware, or
SIGKILL of the interpreter), restores it and runs the station again. Every cycle must
end with the token provisioned exactly once. CI runs a sample of 32 kills on 4 tokens
in parallel; ``PAYTOKEN_SOAK=1`` runs 200.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from paytoken import vhw
from paytoken.backend.store.models import ACTIVE, PENDING
from paytoken.station.provision import Station, TokenReport
from paytoken.vdev import control
from stationkit import assert_no_secret, token_config
from waits import STEP, bound, wait_for

N_TOKENS = 4
KILLS = 200 if os.environ.get("PAYTOKEN_SOAK") else 32
TARGETS = ("config", "clock", "drift", "verify", "lock", "activate")
MAX_DELAY = 2.4  # seconds: a clean provisioning takes about 3 s here, its last second
# the REPL-refused check, where a kill is not seen


def _fresh(tok) -> None:
    # a new board on the fixture: no config, power on, booted
    for name in ("paytoken.cfg", "paytoken.cfg.tmp"):
        try:
            (tok.flash / name).unlink()
        except FileNotFoundError:
            pass
    if not vhw.is_powered(tok.hw):
        vhw.power_on(tok.hw)
    control.hard_reset(tok.flash)


def _kill(tok, how: str) -> None:
    if how == "power":
        # off until the supervisor has seen it and killed the interpreter (it polls the
        # power every 50 ms; a busy machine may take longer): a real cut, not a blink.
        # A board booting at that instant powers itself up (firmware/sim: starting the
        # interpreter is plugging it in), undoing the cut: cut again until it holds.
        def cut() -> bool:
            if vhw.is_powered(tok.hw):
                vhw.power_off(tok.hw)
            return tok.child_pid() is None

        wait_for(cut, what="the power cut killed the interpreter")
        vhw.power_on(tok.hw)
    else:
        pid = tok.child_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_kill_campaign(tokens, issuer, tmp_path: Path) -> None:
    toks = tokens(N_TOKENS)
    vhw.is_powered(toks[0].hw)  # vhw loads its chip models lazily: once, before the threads
    seed = int(os.environ.get("PAYTOKEN_SEED", time.time()))
    print(f"seed {seed}")
    # short device calls while the kills land (a dead token costs 2.5 s, not 10); the
    # re-run, which must succeed, gets a busy machine's room
    station = Station(issuer.backend, board="sim", timeout=2.5, report_dir=tmp_path / "reports")
    rerun = Station(issuer.backend, board="sim", timeout=bound(STEP), report_dir=tmp_path / "reports")
    per = math.ceil(KILLS / N_TOKENS)
    killed_at: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    final_ids: list[int] = []
    secrets_: list[bytes] = []
    errors: list[str] = []
    lock = threading.Lock()

    def campaign(i: int) -> None:
        try:
            cycles(i)
        except Exception as e:  # reported below, with the others
            with lock:
                errors.append(f"token {i}: {type(e).__name__}: {e}")

    def cycles(i: int) -> None:
        tok = toks[i]
        rng = random.Random(seed + i)
        for _ in range(per):
            _fresh(tok)
            box: list[TokenReport] = []
            steps = ["connect"]  # the steps begun, from the station's progress
            target = rng.choice(TARGETS) if rng.random() < 0.5 else None
            hit = threading.Event()

            def seen(_p: str, step: str, _d: str, s: list[str] = steps, ev=hit, tg=target) -> None:
                s.append(step)
                if step == tg:
                    ev.set()

            def run(b: list[TokenReport] = box, cb=seen) -> None:
                b.append(station.provision(tok.port, cb))

            th = threading.Thread(target=run)
            th.start()
            if target is None:  # a random moment
                time.sleep(rng.uniform(0, MAX_DELAY))
            else:  # just inside a chosen step, so that short steps are hit too
                hit.wait(bound(STEP))
                time.sleep(rng.uniform(0, 0.03))
            how = rng.choice(("power", "sigkill"))
            at = steps[-1]
            _kill(tok, how)
            th.join(bound(120))
            assert box, "the station hung"
            first = box[0]
            rep = rerun.provision(tok.port)
            cfg = token_config(tok.flash)
            with lock:
                killed_at[f"{how}@{at}"] += 1
                outcomes[f"{first.status}->{rep.status}"] += 1
                if rep.status not in ("provisioned", "skipped"):
                    errors.append(f"re-run failed at {rep.step}: {rep.error}")
                    continue
                if first.status == "provisioned" and rep.status != "skipped":
                    errors.append("a provisioned token was provisioned again")
                if cfg is None or not cfg["locked"] or cfg["token_id"] != rep.token_id:
                    errors.append(f"token config {cfg and cfg['token_id']} != report {rep.token_id}")
                    continue
                final_ids.append(cfg["token_id"])
                secrets_.extend([cfg["secret"], cfg["sync_key"]])

    threads = [threading.Thread(target=campaign, args=(i,)) for i in range(N_TOKENS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    counts = {"seed": seed, "kills": sum(killed_at.values()), "by_step": dict(sorted(killed_at.items())),
              "outcomes": dict(outcomes), "errors": len(errors)}
    print(json.dumps(counts))
    if os.environ.get("PAYTOKEN_SOAK"):  # make soak reports its counts
        out = Path(__file__).resolve().parents[2] / "reports"
        out.mkdir(exist_ok=True)
        (out / "soak-provision-kills.json").write_text(json.dumps(counts, indent=2) + "\n")
    assert not errors, errors[:5]
    assert len(final_ids) == per * N_TOKENS >= KILLS
    assert len(set(final_ids)) == len(final_ids)  # each cycle its own token id
    assert len({k.split("@")[1] for k in killed_at}) >= 4  # kills landed in many steps

    rows = issuer.rows()
    assert [r["id"] for r in rows if r["status"] == PENDING] == []  # none left over
    active = {r["id"] for r in rows if r["status"] == ACTIVE}
    assert active == set(final_ids)  # provisioned exactly once each, nothing else active
    for tid in final_ids[-N_TOKENS:]:
        assert issuer.secret_of(tid) in secrets_
    assert_no_secret(secrets_, paths=[tmp_path / "reports"])
