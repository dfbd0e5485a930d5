"""PSKC (RFC 6030) key containers: the seed file between a token factory and an issuer.

One ``KeyPackage`` per token: the token id as ``DeviceInfo/SerialNo``, the TOTP
parameters, the secret encrypted under a pre-shared key (AES-128-CBC, the IV
prepended to the cipher text) and an HMAC-SHA1 ``ValueMAC`` over each encrypted
value, with the MAC key itself encrypted under the pre-shared key (RFC 6030 §6.1).
This is what privacyIDEA and FreeIPA's ``ipa-otptoken-import`` read.

Usage::

    data = dumps([KeyPackage(serial="12345678", secret=secret, drift=0)], psk)
    for p in loads(data, psk):
        print(p.serial, p.algorithm, p.digits, p.interval)

``loads`` also reads plain values and password-based (PBKDF2) containers, so RFC
6030's own figures parse. Every refusal is a ``PskcError`` whose message is one line
and never holds a secret.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import hmac
import os
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

NS = "urn:ietf:params:xml:ns:keyprov:pskc"
DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
PKCS5 = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#"
TOTP = "urn:ietf:params:xml:ns:keyprov:pskc:totp"
HOTP = "urn:ietf:params:xml:ns:keyprov:pskc:hotp"
AES128_CBC = XENC + "aes128-cbc"
HMAC_SHA1 = DS + "hmac-sha1"
_TOTP_ALIASES = (TOTP, "urn:ietf:params:xml:ns:keyprov:pskc#totp")
_CBC = {XENC + "aes128-cbc": 16, XENC + "aes192-cbc": 24, XENC + "aes256-cbc": 32}
_HMAC = {DS + "hmac-sha1": "sha1", "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256": "sha256",
         "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512": "sha512"}
PSK_BYTES = 16  # AES-128
MAX_BYTES = 64 << 20  # a container larger than this is not a seed file

# Written with literal prefixes (pskc the default namespace, ds:, xenc:) rather than
# through ElementTree's process-wide prefix registry, which other libraries change.
_PREFIX = {NS: "", DS: "ds:", XENC: "xenc:"}


class PskcError(Exception):
    """A container that cannot be written or read; the message is safe to show."""


@dataclass(frozen=True)
class KeyPackage:
    """One token's key. ``serial`` is the device serial (our token id, 8 digits);
    ``interval`` is the TOTP time step (None for HOTP); ``drift`` the device clock's
    drift in time steps, when known."""

    serial: str
    secret: bytes
    key_id: str | None = None
    algorithm: str = TOTP
    digits: int = 6
    encoding: str = "DECIMAL"
    interval: int | None = 30
    drift: int | None = None
    counter: int | None = None
    manufacturer: str | None = "paytoken"
    issuer: str | None = None

    def __repr__(self) -> str:  # never show the secret
        return f"KeyPackage(serial={self.serial!r}, algorithm={self.algorithm!r})"

    @property
    def is_totp(self) -> bool:
        return self.algorithm in _TOTP_ALIASES


def psk_id(psk: bytes) -> str:
    """A short public name of a pre-shared key (not reversible to the key)."""
    return hmac.new(psk, b"paytoken-psk-id", hashlib.sha256).hexdigest()[:16]


def key_name(psk: bytes) -> str:
    """The ``EncryptionKey/KeyName`` written for ``psk``: lets a reader say "wrong key"."""
    return "paytoken-psk-" + psk_id(psk)


# ---- the pre-shared key file ----------------------------------------------------------------


def new_psk_file(path: Path) -> bytes:
    """Create ``path`` (mode 0600, never overwriting) holding a new random 128-bit key."""
    psk = secrets.token_bytes(PSK_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise PskcError(f"{path} exists; refusing to overwrite a pre-shared key") from None
    except OSError as exc:
        raise PskcError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(psk.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())
    return psk


def read_psk_file(path: Path) -> bytes:
    """The 128-bit key in ``path`` (32 hex digits). Refused when others may read it."""
    try:
        st = os.stat(path)
        text = Path(path).read_text(encoding="ascii")
    except FileNotFoundError:
        raise PskcError(f"no pre-shared key file {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PskcError(f"cannot read the pre-shared key file {path}: {exc.__class__.__name__}") from None
    if st.st_mode & 0o077:
        raise PskcError(f"the pre-shared key file {path} is readable by others "
                        f"(mode {st.st_mode & 0o777:04o}): chmod 600 it")
    try:
        psk = bytes.fromhex(text.strip())
    except ValueError:
        raise PskcError(f"the pre-shared key file {path} does not hold hex digits") from None
    if len(psk) != PSK_BYTES:
        raise PskcError(f"the pre-shared key in {path} must be {PSK_BYTES} bytes "
                        f"({2 * PSK_BYTES} hex digits), not {len(psk)}")
    return psk


# ---- AES-CBC and the MAC ---------------------------------------------------------------------


def _encrypt(key: bytes, plaintext: bytes) -> bytes:
    iv = os.urandom(16)
    p = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + enc.update(p.update(plaintext) + p.finalize()) + enc.finalize()


def _decrypt(algorithm: str, key: bytes, value: bytes, what: str) -> bytes:
    size = _CBC.get(algorithm)
    if size is None:
        raise PskcError(f"{what}: unsupported encryption {algorithm!r} (AES-CBC only)")
    if len(key) != size:
        raise PskcError(f"{what}: {algorithm.rsplit('#', 1)[-1]} needs a {size}-byte key, "
                        f"the pre-shared key has {len(key)}")
    if len(value) < 32 or len(value) % 16:
        raise PskcError(f"{what}: the cipher value is not IV + whole AES blocks")
    dec = Cipher(algorithms.AES(key), modes.CBC(value[:16])).decryptor()
    u = padding.PKCS7(128).unpadder()
    try:
        return u.update(dec.update(value[16:]) + dec.finalize()) + u.finalize()
    except ValueError:
        raise PskcError(f"{what} does not decrypt: wrong pre-shared key") from None


def _mac(algorithm: str, key: bytes, value: bytes) -> bytes:
    return hmac.new(key, value, _HMAC[algorithm]).digest()


# ---- writing ------------------------------------------------------------------------------


def _el(parent: ET.Element, ns: str, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    e = ET.SubElement(parent, _PREFIX[ns] + tag, attrs)
    if text is not None:
        e.text = text
    return e


def _cipher(parent: ET.Element, value: bytes) -> None:
    _el(parent, XENC, "EncryptionMethod", Algorithm=AES128_CBC)
    data = _el(parent, XENC, "CipherData")
    _el(data, XENC, "CipherValue", base64.b64encode(value).decode("ascii"))


def _plain_int(data: ET.Element, tag: str, value: int | None) -> None:
    if value is not None:
        _el(_el(data, NS, tag), NS, "PlainValue", str(int(value)))


def dumps(packages: Iterable[KeyPackage], psk: bytes, *, mac_key: bytes | None = None) -> bytes:
    """A KeyContainer with every package's secret encrypted under ``psk`` and MAC'd."""
    if len(psk) != PSK_BYTES:
        raise PskcError(f"the pre-shared key must be {PSK_BYTES} bytes for AES-128-CBC")
    mac_key = mac_key or secrets.token_bytes(20)  # the hash's output size (RFC 2104 §3)
    root = ET.Element("KeyContainer", {"Version": "1.0", "xmlns": NS, "xmlns:ds": DS,
                                       "xmlns:xenc": XENC})
    _el(_el(root, NS, "EncryptionKey"), DS, "KeyName", key_name(psk))
    method = _el(root, NS, "MACMethod", Algorithm=HMAC_SHA1)
    _cipher(_el(method, NS, "MACKey"), _encrypt(psk, mac_key))
    seen: set[str] = set()
    for p in packages:
        if not p.serial or p.serial in seen:
            raise PskcError(f"serial {p.serial!r} is empty or given twice")
        seen.add(p.serial)
        if len(p.secret) < 16:
            raise PskcError(f"serial {p.serial}: a secret must be at least 16 bytes")
        kp = _el(root, NS, "KeyPackage")
        dev = _el(kp, NS, "DeviceInfo")
        if p.manufacturer:
            _el(dev, NS, "Manufacturer", p.manufacturer)
        _el(dev, NS, "SerialNo", p.serial)
        key = _el(kp, NS, "Key", Id=p.key_id or p.serial, Algorithm=p.algorithm)
        if p.issuer:
            _el(key, NS, "Issuer", p.issuer)
        params = _el(key, NS, "AlgorithmParameters")
        _el(params, NS, "ResponseFormat", Length=str(p.digits), Encoding=p.encoding)
        data = _el(key, NS, "Data")
        secret = _el(data, NS, "Secret")
        value = _encrypt(psk, p.secret)
        _cipher(_el(secret, NS, "EncryptedValue"), value)
        _el(secret, NS, "ValueMAC", base64.b64encode(_mac(HMAC_SHA1, mac_key, value)).decode("ascii"))
        _plain_int(data, "Counter", p.counter)
        _plain_int(data, "TimeInterval", p.interval)
        _plain_int(data, "TimeDrift", p.drift)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


# ---- reading ------------------------------------------------------------------------------


def _find(e: ET.Element | None, *path: str) -> ET.Element | None:
    # children by local name, in any namespace (files use pskc:, a default ns, or none)
    for name in path:
        if e is None:
            return None
        e = next((c for c in e if isinstance(c.tag, str) and c.tag.rpartition("}")[2] == name), None)
    return e


def _findall(e: ET.Element, name: str) -> Iterator[ET.Element]:
    return (c for c in e if isinstance(c.tag, str) and c.tag.rpartition("}")[2] == name)


def _attr(e: ET.Element | None, name: str) -> str:
    return "" if e is None else e.get(name) or ""


def _text(e: ET.Element | None) -> str | None:
    return None if e is None or e.text is None else "".join(e.text.split())


def _b64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode(text or "", validate=True)
    except (binascii.Error, ValueError):
        raise PskcError(f"{what} is not base64") from None


def _int(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    body = text[1:] if text[:1] == "-" else text
    if not body.isascii() or not body.isdigit():
        raise PskcError(f"{what} is not an integer")
    return int(text)


class _Reader:
    def __init__(self, root: ET.Element, psk: bytes | None, password: str | None) -> None:
        self.root = root
        self.key = self._encryption_key(psk, password)
        self.mac_alg, self.mac_key = self._mac_key()

    def _encryption_key(self, psk: bytes | None, password: str | None) -> bytes | None:
        ek = _find(self.root, "EncryptionKey")
        if ek is None:
            return psk
        derived = _find(ek, "DerivedKey")
        if derived is not None:
            if password is None:
                raise PskcError("the container's key is derived from a password: give the password")
            return _pbkdf2(derived, password)
        name = _text(_find(ek, "KeyName"))
        if psk is not None and name and name.startswith("paytoken-psk-") and name != key_name(psk):
            raise PskcError(f"wrong pre-shared key: the container was encrypted under {name}, "
                            f"this key is {key_name(psk)}")
        return psk

    def _mac_key(self) -> tuple[str | None, bytes | None]:
        method = _find(self.root, "MACMethod")
        if method is None:
            return None, None
        alg = method.get("Algorithm") or ""
        if alg not in _HMAC:
            raise PskcError(f"unsupported MAC algorithm {alg!r}")
        enc = _find(method, "MACKey")
        if enc is None:
            raise PskcError("the container names a MAC method but holds no MAC key")
        return alg, self._decrypt(enc, "the MAC key")

    def _decrypt(self, enc: ET.Element, what: str) -> bytes:
        if self.key is None:
            raise PskcError(f"{what} is encrypted: give the pre-shared key")
        alg = _attr(_find(enc, "EncryptionMethod"), "Algorithm")
        value = _b64(_text(_find(enc, "CipherData", "CipherValue")), f"{what}'s cipher value")
        return _decrypt(alg, self.key, value, what)

    def value(self, e: ET.Element | None, what: str) -> bytes | None:
        """A data value: plain (base64), or encrypted and checked against its MAC."""
        if e is None:
            return None
        plain = _find(e, "PlainValue")
        if plain is not None:
            return _b64(_text(plain), what)
        enc = _find(e, "EncryptedValue")
        if enc is None:
            return None
        mac = _find(e, "ValueMAC")
        if self.mac_key is None or mac is None:
            raise PskcError(f"{what} is encrypted without a MAC: refused (RFC 6030 §6.1.1)")
        cipher = _b64(_text(_find(enc, "CipherData", "CipherValue")), f"{what}'s cipher value")
        assert self.mac_alg is not None
        if not hmac.compare_digest(_mac(self.mac_alg, self.mac_key, cipher), _b64(_text(mac), f"{what}'s MAC")):
            raise PskcError(f"{what}: the MAC does not match: the file was altered (or the key is wrong)")
        return self._decrypt(enc, what)

    def integer(self, e: ET.Element | None, what: str) -> int | None:
        if e is None:
            return None
        plain = _find(e, "PlainValue")
        if plain is not None:
            return _int(_text(plain), what)
        raw = self.value(e, what)
        if raw is None:
            return None
        return int(raw) if raw.isdigit() else int.from_bytes(raw, "big")


def _pbkdf2(derived: ET.Element, password: str) -> bytes:
    method = _find(derived, "KeyDerivationMethod")
    if method is None or not (method.get("Algorithm") or "").endswith("#pbkdf2"):
        raise PskcError("unsupported key derivation (PBKDF2 only)")
    params = _find(method, "PBKDF2-params")
    salt = _b64(_text(_find(params, "Salt", "Specified")), "the PBKDF2 salt")
    count = _int(_text(_find(params, "IterationCount")), "the PBKDF2 iteration count")
    length = _int(_text(_find(params, "KeyLength")), "the PBKDF2 key length")
    prf = _attr(_find(params, "PRF"), "Algorithm")
    digest = "sha1" if not prf else prf.rpartition("hmac-")[2]
    if not salt or not count or not length or digest not in ("sha1", "sha256", "sha512"):
        raise PskcError("incomplete or unsupported PBKDF2 parameters")
    return hashlib.pbkdf2_hmac(digest, password.encode(), salt, count, length)


def loads(data: bytes, psk: bytes | None = None, *, password: str | None = None) -> list[KeyPackage]:
    """Every key package of a container, secrets decrypted and MACs checked. A package
    without a secret (a key reference, RFC 6030 figure 4) has ``secret=b""``."""
    if len(data) > MAX_BYTES:
        raise PskcError("the file is too large to be a PSKC container")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise PskcError("the file has a DOCTYPE: refused (entities are never needed in PSKC)")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise PskcError(f"not XML: {exc}") from None
    if root.tag != f"{{{NS}}}KeyContainer":
        raise PskcError("not a PSKC file: the root is not a KeyContainer in the RFC 6030 namespace")
    if root.get("Version") != "1.0":
        raise PskcError(f"unsupported PSKC version {root.get('Version')!r} (1.0 only)")
    r = _Reader(root, psk, password)
    out: list[KeyPackage] = []
    for n, kp in enumerate(_findall(root, "KeyPackage"), 1):
        key = _find(kp, "Key")
        serial = _text(_find(kp, "DeviceInfo", "SerialNo")) or ""
        what = f"key package {n}" + (f" (serial {serial})" if serial else "")
        if key is None:
            out.append(KeyPackage(serial=serial, secret=b"", algorithm="", interval=None))
            continue
        fmt = _find(key, "AlgorithmParameters", "ResponseFormat")
        data_e = _find(key, "Data")
        secret = r.value(_find(data_e, "Secret"), f"{what}: the secret")
        out.append(KeyPackage(
            serial=serial, secret=secret or b"", key_id=key.get("Id"),
            algorithm=key.get("Algorithm") or "",
            digits=_int(fmt.get("Length"), f"{what}: the response length") or 0 if fmt is not None else 0,
            encoding=(fmt.get("Encoding") or "") if fmt is not None else "",
            interval=r.integer(_find(data_e, "TimeInterval"), f"{what}: the time interval"),
            drift=r.integer(_find(data_e, "TimeDrift"), f"{what}: the time drift"),
            counter=r.integer(_find(data_e, "Counter"), f"{what}: the counter"),
            manufacturer=_text(_find(kp, "DeviceInfo", "Manufacturer")),
            issuer=_text(_find(key, "Issuer"))))
    return out


def serials(data: bytes) -> list[str]:
    """The serials in a container, without decrypting anything."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise PskcError(f"not XML: {exc}") from None
    return [_text(_find(kp, "DeviceInfo", "SerialNo")) or "" for kp in _findall(root, "KeyPackage")]


# ---- a container file that grows, one token at a time ----------------------------------------------


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside ``path`` (``path.lock``), across threads and processes."""
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically (temp file, fsync, rename) with mode 0600."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_file(path: Path, psk: bytes) -> list[KeyPackage]:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise PskcError(f"no PSKC file {path}") from None
    except OSError as exc:
        raise PskcError(f"cannot read {path}: {exc.strerror}") from None
    return loads(data, psk)


def append_file(path: Path, packages: list[KeyPackage], psk: bytes) -> None:
    """Add ``packages`` to the container at ``path`` (created when missing): the whole
    file is checked under ``psk`` and rewritten atomically, mode 0600, under a lock."""
    path = Path(path)
    with locked(path):
        old = read_file(path, psk) if path.exists() else []
        have = {p.serial for p in old}
        dup = [p.serial for p in packages if p.serial in have]
        if dup:
            raise PskcError(f"{path} already holds serial {dup[0]}")
        write_private(path, dumps(old + packages, psk))
