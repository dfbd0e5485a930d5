"""The backend CLI commands, in-process, on SQLite and PostgreSQL; and the code-parser fuzz."""

from __future__ import annotations

import base64
import json

import paycode
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paytoken.cli import main

from .conftest import SECRET, T0


def run(capsys, *argv, rc=0):
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    out = capsys.readouterr()
    assert e.value.code == rc, out.err
    return out


def test_cli_end_to_end(db_url, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PAYTOKEN_MASTER_KEY", raising=False)
    mk, mk2 = tmp_path / "master.key", tmp_path / "new.key"
    run(capsys, "db", "new-master-key", str(mk))
    run(capsys, "db", "new-master-key", str(mk2))
    assert oct(mk.stat().st_mode & 0o777) == "0o600"
    assert "refusing" in run(capsys, "db", "new-master-key", str(mk), rc=1).err
    init = json.loads(run(capsys, "db", "init", "--db", db_url, "--json").out)
    assert init["schema"] == "0009"  # the template was migrated already; rerunning is a no-op
    assert "scheme key" not in run(capsys, "scheme", "add", "--prefix", "81", "--db", db_url,
                                   "--master-key-file", str(mk)).out
    err = run(capsys, "scheme", "add", "--prefix", "12", "--db", db_url, "--master-key-file", str(mk), rc=1).err
    assert "another wallet" in err
    assert "master key" in run(capsys, "scheme", "add", "--prefix", "83", "--db", db_url, rc=1).err
    b32 = base64.b32encode(SECRET).decode()
    run(capsys, "token", "add", "--id", "42", "--secret", b32.lower(), "--db", db_url, "--master-key-file", str(mk))
    assert "base32" in run(capsys, "token", "add", "--id", "43", "--secret", "not*base32", "--db", db_url,
                           "--master-key-file", str(mk), rc=1).err
    m = json.loads(run(capsys, "merchant", "add", "shop", "--db", db_url, "--json").out)
    assert m["api_key"].startswith("ptk_live_")
    bal = json.loads(run(capsys, "account", "credit", "--token-id", "42", "--amount", "900", "--db", db_url,
                         "--json").out)
    assert bal["balance"] == 900
    listed = json.loads(run(capsys, "token", "list", "--db", db_url, "--json").out)
    assert [t["token_id"] for t in listed] == [42]
    shown = run(capsys, "token", "show", "42", "--db", db_url).out
    assert "status: active" in shown
    for text in (shown, json.dumps(listed)):
        assert SECRET.hex() not in text and b32 not in text
    assert "no token" in run(capsys, "token", "show", "7", "--db", db_url, rc=1).err
    # rotation: re-wrap under the new key, then only the new key opens the secrets
    rot = json.loads(run(capsys, "db", "rotate-master-key", "--new-key-file", str(mk2), "--db", db_url,
                         "--master-key-file", str(mk), "--json").out)
    assert rot["rewrapped"] == 3
    from paytoken.backend.crypto import Keyring
    from paytoken.backend.service import Backend

    b = Backend.open(db_url, Keyring.load(mk2), clock=lambda: T0)
    assert b.verify(paycode.payment_code(SECRET, 42, T0, b.scheme_keys()["81"])).ok
    b.engine.dispose()
    assert json.loads(run(capsys, "token", "revoke", "42", "--db", db_url, "--json").out)["status"] == "revoked"
    assert "only a locked token" in run(capsys, "token", "unlock", "42", "--db", db_url, rc=1).err
    assert "intact" in run(capsys, "db", "audit-verify", "--db", db_url).out
    assert "argument --workers: 0 is out of range (1 to 64)" in run(capsys, "serve", "--db", db_url, "--workers", "0", rc=1).err


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=40), st.text("0123456789", min_size=16, max_size=20),
                 st.text("0123456789١٢٣٤٥ ", min_size=17, max_size=22)))
def test_fuzz_code_parser_refuses_cleanly(text):
    # Any string: parse_code raises ValueError with a reason, or names a token; never another error.
    from paytoken.backend import codes

    key = bytes(16)
    try:
        prefix, token_id, residue, otp = paycode.parse_code(text, key)
    except ValueError as exc:
        assert str(exc)
        with pytest.raises(ValueError) as fast:  # the backend's parser refuses alike
            codes.parse_code(text, {p: key for p in ("81", "82", "16", "99")})
        assert str(fast.value) == str(exc) or "unknown prefix" in str(exc)
        return
    assert codes.parse_code(text, {prefix: key}) == (prefix, token_id, residue, otp)
    assert len(text.replace(" ", "")) == 18 and 0 <= token_id <= 99_999_999 and 0 <= residue <= 9
    assert len(otp) == 6 and otp.isdigit()


def test_token_add_reads_the_secret_from_stdin(db_url, tmp_path, capsys, monkeypatch):
    import io

    from paytoken.backend.crypto import Keyring
    from paytoken.backend.service import Backend

    mk = tmp_path / "master.key"
    run(capsys, "db", "new-master-key", str(mk))
    run(capsys, "scheme", "add", "--prefix", "81", "--db", db_url, "--master-key-file", str(mk))
    b32 = base64.b32encode(SECRET).decode()
    monkeypatch.setattr("sys.stdin", io.StringIO(f"otpauth://totp/Shop:42?secret={b32}&issuer=Shop\n"))
    out = run(capsys, "token", "add", "--id", "42", "--secret", "-", "--db", db_url,
              "--master-key-file", str(mk))
    assert b32 not in out.out + out.err
    b = Backend.open(db_url, Keyring.load(mk), clock=lambda: T0)
    assert b.verify(paycode.payment_code(SECRET, 42, T0, b.scheme_keys()["81"])).ok
    b.engine.dispose()
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    err = run(capsys, "token", "add", "--id", "43", "--secret", "-", "--db", db_url,
              "--master-key-file", str(mk), rc=1).err
    assert err == "paytoken: no secret on stdin (give it on the first line)\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(f"otpauth://totp/x?secret={b32}&digits=8\n"))
    err = run(capsys, "token", "add", "--id", "43", "--secret", "-", "--db", db_url,
              "--master-key-file", str(mk), rc=1).err
    assert "payment codes of format 1 use SHA-1, 6 digits and 30 s" in err and b32 not in err


@pytest.mark.parametrize("argv", [["token", "list"], ["account", "credit", "--token-id", "1", "--amount", "5"],
                                  ["db", "audit-verify"], ["serve"], ["token", "show", "1"]])
def test_a_mistyped_db_is_an_error_and_creates_nothing(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAYTOKEN_MASTER_KEY", "00" * 32)
    (tmp_path / "sub").mkdir()
    (tmp_path / "junk.db").write_bytes(b"this is not SQLite\n" * 10)
    for db, msg in (("paytokn.db", "no database at paytokn.db: check --db"),
                    ("sqlite:///paytokn.db", "no database at paytokn.db"),
                    ("nofolder/x.db", "no database at nofolder/x.db"),
                    ("sqlite:///sub", "is a folder, not an SQLite database file"),
                    ("junk.db", "the file is not an SQLite database")):
        err = run(capsys, *argv, "--db", db, rc=1).err
        assert err.startswith("paytoken: ") and err.count("\n") == 1 and msg in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.db", "sub"]
    assert (tmp_path / "junk.db").read_bytes() == b"this is not SQLite\n" * 10
    monkeypatch.setenv("PAYTOKEN_DB", "paytokn.db")
    assert "no database at paytokn.db" in run(capsys, *argv, rc=1).err
    monkeypatch.setenv("PAYTOKEN_DB", "mysql://x/y")
    assert "$PAYTOKEN_DB: unsupported database 'mysql'" in run(capsys, *argv, rc=1).err


def test_db_init_refuses_cleanly(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "junk.db").write_text("hello\n")
    for db, msg in (("nofolder/x.db", "--db nofolder/x.db: folder nofolder does not exist"),
                    (str(tmp_path), "is a folder"),
                    ("sqlite:///" + str(tmp_path), "is a folder, not an SQLite database file"),
                    ("junk.db", "the file is not an SQLite database"),
                    ("sqlite://", "SQLite needs a file"),
                    ("postgresql://paytoken:s3cret@127.0.0.1:1/x", "127.0.0.1:1/x: connection failed")):
        err = run(capsys, "db", "init", "--db", db, rc=1).err
        assert err.startswith("paytoken: ") and err.count("\n") == 1 and msg in err, err
        assert "s3cret" not in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.db"]
    assert (tmp_path / "junk.db").read_text() == "hello\n"
    run(capsys, "db", "init", "--db", "new.db")  # and a good path works
    assert (tmp_path / "new.db").is_file()


@pytest.mark.postgres
def test_postgres_errors_are_one_line(pg_url, capsys):
    from sqlalchemy.engine import make_url

    bad = make_url(pg_url).set(database="no_such_db_here").render_as_string(hide_password=False)
    for argv in (["db", "init"], ["token", "list"], ["account", "credit", "--token-id", "1", "--amount", "5"]):
        err = run(capsys, *argv, "--db", bad, rc=1).err
        assert err.startswith("paytoken: database postgresql") and err.count("\n") == 1
        assert "no_such_db_here" in err and "Traceback" not in err


def test_cli_scheme_defaults_and_token_set(db_url, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PAYTOKEN_MASTER_KEY", raising=False)
    mk = tmp_path / "master.key"
    run(capsys, "db", "new-master-key", str(mk))
    common = ["--db", db_url, "--master-key-file", str(mk)]
    sc = json.loads(run(capsys, "scheme", "add", "--prefix", "81", "--limit-per-payment", "3000",
                        "--limit-per-day", "9000", "--currency", "EUR", *common, "--json").out)
    assert (sc["limit_per_payment"], sc["limit_per_day"], sc["currency"]) == (3000, 9000, "EUR")
    assert "is not a currency code" in run(capsys, "scheme", "add", "--prefix", "82", "--currency", "eur",
                                          *common, rc=1).err
    b32 = base64.b32encode(SECRET).decode()
    t = json.loads(run(capsys, "token", "add", "--id", "42", "--secret", b32, *common, "--json").out)
    assert (t["limit_per_payment"], t["limit_per_day"], t["currency"]) == (3000, 9000, "EUR")
    t = json.loads(run(capsys, "token", "set", "42", "--limit-per-payment", "500", "--limit-per-day", "none",
                       "--currency", "CNY", "--db", db_url, "--json").out)
    assert (t["limit_per_payment"], t["limit_per_day"], t["currency"]) == (500, None, "CNY")
    assert "500 per payment" in run(capsys, "token", "set", "42", "--limit-per-payment", "500", "--db", db_url).out
    run(capsys, "account", "credit", "--token-id", "42", "--amount", "10", "--db", db_url)
    assert "balance 0" in run(capsys, "token", "set", "42", "--currency", "USD", "--db", db_url, rc=1).err
    assert "nothing to change" in run(capsys, "token", "set", "42", "--db", db_url, rc=1).err
    assert "is out of range (1 to" in run(capsys, "token", "set", "42", "--limit-per-day", "0", "--db", db_url, rc=1).err
    assert "no token" in run(capsys, "token", "set", "7", "--limit-per-day", "5", "--db", db_url, rc=1).err
    run(capsys, "token", "set", "42", "--limit-per-day", "abc", "--db", db_url, rc=1)
    # revoke is final: a revoked token is not re-marked lost
    run(capsys, "token", "revoke", "42", "--db", db_url)
    run(capsys, "token", "revoke", "42", "--db", db_url)  # the same again: a no-op
    assert "final" in run(capsys, "token", "revoke", "42", "--lost", "--db", db_url, rc=1).err
