"""Online codes in the Backend facade, with an injected clock (SQLite and PostgreSQL):
validity to the second, the issuer's setup (no online scheme, no token under one, its key
never handed out), the wallet's request budget, the wallet summary, the library verify."""

from __future__ import annotations

import paycode
import pytest
from paytoken.backend import BackendError, rules
from paytoken.backend.service import online

from .conftest import SECRET


@pytest.fixture
def ow(world):
    okey = world.backend.add_scheme("71", online=True)
    key = world.backend.issue_wallet_key(42)
    return world, okey, key


def test_a_code_is_valid_until_expires_at_and_not_a_second_longer(ow):
    w, _okey, key = ow
    (a,) = w.backend.online_codes(key)
    assert a["expires_at"] == w.clock.t + online.DEFAULT_TTL
    (b,) = w.backend.online_codes(key, ttl=10)
    w.clock.t += 9
    assert w.backend.pay(w.merchant_id, b["code"], 1, "CNY", "v-1")["status"] == "succeeded"
    (c,) = w.backend.online_codes(key, ttl=10)
    w.clock.t += 10  # expires_at is the first second it is refused
    out = w.backend.pay(w.merchant_id, c["code"], 1, "CNY", "v-2")
    assert out["reason"] == "CODE_EXPIRED"
    w.clock.t = a["expires_at"] - 1
    assert w.backend.pay(w.merchant_id, a["code"], 1, "CNY", "v-3")["status"] == "succeeded"


def test_count_and_ttl_bounds_in_the_facade(ow):
    w, _okey, key = ow
    for count, ttl in ((0, None), (16, None), (True, None), ("1", None), (1, 0), (1, online.MAX_TTL + 1),
                       (1, 1.5)):
        with pytest.raises(BackendError) as e:
            w.backend.online_codes(key, count, ttl)
        assert e.value.kind == "invalid"
    assert len(w.backend.online_codes(key, online.MAX_COUNT, online.MAX_TTL)) == 15
    with pytest.raises(BackendError) as e:
        w.backend.online_codes("ptk_wallet_nope")
    assert e.value.kind == "unauthorized"


def test_the_issuer_needs_an_online_scheme_and_keeps_its_key(world):
    b = world.backend
    key = b.issue_wallet_key(42)
    with pytest.raises(BackendError) as e:
        b.online_codes(key)
    assert e.value.kind == "unavailable" and "scheme add --online" in str(e.value)
    b.add_scheme("71", online=True)
    with pytest.raises(BackendError) as e:  # no token under an online prefix
        b.add_token(43, SECRET, prefix="71")
    assert e.value.kind == "invalid" and "online" in str(e.value)
    with pytest.raises(BackendError) as e:  # and no provisioning station reads its key
        b.station_scheme_key("71", "admin:ops")
    assert e.value.kind == "invalid"
    assert len(b.station_scheme_key("81", "admin:ops")) == 16
    assert set(b.scheme_keys()) == {"81"}  # nor an offline batch (batches.create_batch)
    # a newer online scheme takes over issuing; the older one's codes still pay
    (old,) = b.online_codes(key)
    world.clock.t += 1
    b.add_scheme("72", online=True)
    (new,) = b.online_codes(key)
    assert old["code"][:2] == "71" and new["code"][:2] == "72"
    for i, c in enumerate((old, new)):
        assert b.pay(world.merchant_id, c["code"], 1, "CNY", f"n-{i}")["status"] == "succeeded"


def test_a_wallet_asking_too_often_gets_429_with_retry_after(ow):
    w, _okey, key = ow
    bud = rules.WALLET_CODES
    for _ in range(bud.burst):
        w.backend.online_codes(key)
    with pytest.raises(BackendError) as e:
        w.backend.online_codes(key)
    assert e.value.kind == "throttled" and e.value.retry_after == bud.interval_s
    w.clock.t += bud.interval_s
    assert len(w.backend.online_codes(key)) == 1


def test_wallet_keys_belong_to_active_tokens_and_replace_each_other(ow):
    w, _okey, key = ow
    b = w.backend
    assert b.wallet_token(key) == 42 and b.wallet_token("ptk_wallet_x") is None and b.wallet_token("é") is None
    with pytest.raises(BackendError) as e:
        b.issue_wallet_key(4242)
    assert e.value.kind == "not_found"
    codes = b.online_codes(key, 3)
    key2 = b.issue_wallet_key(42)
    assert b.wallet_token(key) is None and b.wallet_token(key2) == 42
    assert b.revoke_wallet_key(42) == 0  # the old key's three died when key2 replaced it
    assert b.pay(w.merchant_id, codes[0]["code"], 1, "CNY", "k-1")["reason"] == "CODE_EXPIRED"
    with pytest.raises(BackendError) as e:
        b.revoke_wallet_key(42)
    assert e.value.kind == "not_found"
    b.set_status(42, "lost", "cli")
    with pytest.raises(BackendError) as e:
        b.issue_wallet_key(42)
    assert e.value.kind == "conflict"


def test_wallet_summary_and_verify(ow):
    w, okey, key = ow
    b = w.backend
    batch = b.online_codes(key, 4)
    for i, c in enumerate(batch[:3]):
        w.clock.t += 1
        assert b.pay(w.merchant_id, c["code"], 100 * (i + 1), "CNY", f"s-{i}")["status"] == "succeeded"
    s = b.wallet_summary(42, recent=2)
    assert s["balance"] == 100_000 - 600 and s["spent_today"] == 600 and s["currency"] == "CNY"
    assert [p["amount"] for p in s["payments"]] == [300, 200]  # newest first
    assert b.wallet_summary(42, recent=0)["payments"] == []
    with pytest.raises(BackendError):
        b.wallet_summary(42, recent=101)
    # the library's verify consumes an online code once too
    assert b.verify(batch[3]["code"]).ok
    assert b.verify(batch[3]["code"]).reason == "CODE_REPLAYED"
    # a code with a changed digit fails the Damm check before anything
    c = batch[0]["code"]
    bad = c[:5] + str((int(c[5]) + 1) % 10) + c[6:]
    assert b.verify(bad).reason == "CODE_INVALID"
    prefix, tid, residue, otp = paycode.parse_code(c, {"71": okey})
    assert online.make_code(okey, prefix, tid, int("%d%s" % (residue, otp))) == c


def test_guesses_from_several_merchants_lock_the_token_for_online_codes_too(ow):
    w, okey, key = ow
    b = w.backend
    (real,) = b.online_codes(key, 1, 3600)
    merchants = [b.add_merchant(f"m{i}")[0] for i in range(3)]
    _, _, residue, otp = paycode.parse_code(real["code"], {"71": okey})
    issued = int("%d%s" % (residue, otp))  # a random serial: a guess must never be it
    serial = 1234
    for m in merchants:  # 2 guesses each (their per-token budget): 6 > the token's burst of 5
        for _ in range(rules.MERCHANT_TOKEN_GUESSES.burst):
            serial += 1 + (serial + 1 == issued)
            out = b.pay(m, online.make_code(okey, "71", 42, serial), 1, "CNY", f"g-{serial}")
            assert out["reason"] in ("CODE_INVALID", "TOKEN_LOCKED"), out
    info = b.token_info(42)
    assert info["status"] == "locked" and info["failures"] == rules.TOKEN_GUESSES.burst
    out = b.pay(w.merchant_id, real["code"], 1, "CNY", "locked-1")
    assert out["reason"] == "TOKEN_LOCKED" and out["payment_id"] is None and out["retry_after"] > 0
    b.unlock(42, "cli")
    assert b.pay(w.merchant_id, real["code"], 1, "CNY", "locked-2")["status"] == "succeeded"
