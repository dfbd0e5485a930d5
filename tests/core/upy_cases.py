# Differential driver, run by the MicroPython unix port AND by CPython: reads one
# case a line ("secret_hex unix_time token_id scheme_key_hex prefix") from the file
# named in CASES, prints one result line per case. Kept to what both interpreters
# share (no f-strings with format specs, no typing).
import sys
from binascii import hexlify, unhexlify

import paycode


def one(line):
    sh, ts, tids, kh, prefix = line.split()
    secret = unhexlify(sh)
    t = int(ts)
    tid = int(tids)
    key = unhexlify(kh)
    otp = paycode.totp(secret, t)
    otp8 = paycode.totp(secret, t, 60, 8)
    code = paycode.payment_code(secret, tid, t, key, prefix)
    parsed = paycode.parse_code(code, key)
    civ = paycode.civil_from_unix(t) if t < 7258118400 else (0, 0, 0, 0, 0, 0)
    back = paycode.unix_from_civil(*civ) if civ[0] else -1
    mac = paycode.sync_mac(secret, "SETTIME", sh[:12], t)
    enc = paycode.ff1_encrypt(key, unhexlify(sh[:8]), code[:15])
    dec = paycode.ff1_decrypt(key, unhexlify(sh[:8]), enc)
    h = hexlify(paycode.hmac_sha1(key, secret)).decode()
    # format 2 (TOTP HMAC-SHA256): its OTP on every case, a whole code on every fourth
    otp2 = paycode.totp(secret, t, 30, 6, "sha256")
    code2 = paycode.payment_code(secret, tid, t, key, prefix, 2) if tid % 4 == 0 else "-"
    return "%s %s %s %s %d %d %s %s %d %s %s %s %s %d %s %s" % (
        otp,
        otp8,
        code,
        parsed[0],
        parsed[1],
        parsed[2],
        parsed[3],
        "-".join([str(x) for x in civ]),
        back,
        mac,
        enc,
        dec,
        h,
        paycode.damm(code[:17]),
        otp2,
        code2,
    )


def main(path):
    out = sys.stdout
    out.write("backend %s\n" % paycode.AES_BACKEND)
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                out.write(one(line))
                out.write("\n")


main(CASES)  # noqa: F821 - injected by the runner
