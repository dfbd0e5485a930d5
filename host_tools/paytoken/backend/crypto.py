"""Envelope encryption of secrets at rest, and API-key hashing.

Each secret gets its own random 256-bit data key (DEK); the secret is sealed with
AES-GCM under the DEK, with the record's context (e.g. ``token:42:secret``) as
associated data, so a ciphertext copied to another row does not open. The DEK is
wrapped with AES-GCM under the master key (KEK). Rotating the master key re-wraps
the DEKs only; a keyring holding both the new and the old key opens both forms, so
servers keep running during a rotation.

Envelope text: ``v1.<kek id>.<b64url(nonce|wrapped dek)>.<b64url(nonce|ciphertext)>``.

Usage::

    ring = Keyring.load()            # PAYTOKEN_MASTER_KEY="new,old" (hex) or a key file
    blob = ring.seal(secret, "token:42:secret")
    assert ring.open(blob, "token:42:secret") == secret
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from paytoken.backend import INTERNAL, BackendError

ENV_MASTER_KEY = "PAYTOKEN_MASTER_KEY"
ENV_MASTER_KEY_FILE = "PAYTOKEN_MASTER_KEY_FILE"
_VERSION = "v1"
_NONCE = 12


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def kek_id(key: bytes) -> str:
    """A short public identifier of a master key (not reversible to the key)."""
    return hmac.new(key, b"paytoken-kek-id", hashlib.sha256).hexdigest()[:16]


def parse_master_keys(text: str) -> list[bytes]:
    """Parse ``hex[,hex...]`` (current key first). Raises BackendError, never echoing key text."""
    keys = []
    for i, part in enumerate(p.strip() for p in text.replace("\n", ",").split(",")):
        if not part:
            continue
        try:
            key = bytes.fromhex(part)
        except ValueError:
            raise BackendError(f"master key #{i + 1} is not hexadecimal") from None
        if len(key) != 32:
            raise BackendError(
                f"master key #{i + 1} must be 32 bytes (64 hex digits), got {len(key)} bytes"
            )
        keys.append(key)
    if not keys:
        raise BackendError("master key is empty")
    return keys


class Keyring:
    """Master keys: the first seals, all of them open (old ones during rotation)."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise BackendError("a keyring needs at least one master key")
        self._raw = list(keys)
        self._keys = {kek_id(k): AESGCM(k) for k in keys}
        self.current_id = kek_id(keys[0])
        self._current = self._keys[self.current_id]

    def __repr__(self) -> str:  # never show key material
        return f"Keyring(current={self.current_id}, keys={len(self._keys)})"

    def promote(self, new_key: bytes) -> Keyring:
        """A keyring sealing under ``new_key`` that still opens everything this one does."""
        return Keyring([new_key, *(k for k in self._raw if k != new_key)])

    def without_old(self) -> Keyring:
        """Only the current key (after a rotation has finished)."""
        return Keyring(self._raw[:1])

    def derive(self, label: str) -> bytes:
        """A 32-byte key for ``label`` (e.g. the web sessions' cookie key), derived from the
        current master key with HMAC-SHA256: every server holding that key derives the same."""
        return hmac.new(self._raw[0], b"paytoken-derive-v1|" + label.encode(), hashlib.sha256).digest()

    @classmethod
    def generate(cls) -> tuple[Keyring, str]:
        """A fresh random master key; returns the keyring and its hex (show it once)."""
        key = AESGCM.generate_key(256)
        return cls([key]), key.hex()

    @classmethod
    def load(cls, key_file: str | os.PathLike | None = None) -> Keyring:
        """From ``key_file``, else ``$PAYTOKEN_MASTER_KEY``, else ``$PAYTOKEN_MASTER_KEY_FILE``."""
        if key_file is None and os.environ.get(ENV_MASTER_KEY):
            return cls(parse_master_keys(os.environ[ENV_MASTER_KEY]))
        key_file = key_file or os.environ.get(ENV_MASTER_KEY_FILE)
        if not key_file:
            raise BackendError(
                f"no master key: set {ENV_MASTER_KEY} (64 hex digits) or pass --master-key-file"
            )
        try:
            text = Path(key_file).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise BackendError(f"cannot read master key file {key_file}: {exc.__class__.__name__}") from None
        return cls(parse_master_keys(text))

    def seal(self, plaintext: bytes, context: str) -> str:
        """Encrypt ``plaintext`` bound to ``context``; returns the envelope text."""
        dek = AESGCM.generate_key(256)
        n1, n2 = os.urandom(_NONCE), os.urandom(_NONCE)
        ct = AESGCM(dek).encrypt(n1, plaintext, context.encode())
        wrapped = self._current.encrypt(n2, dek, b"paytoken-dek|" + self.current_id.encode())
        return ".".join((_VERSION, self.current_id, _b64(n2 + wrapped), _b64(n1 + ct)))

    def _unwrap(self, kid: str, wrapped: str) -> bytes:
        kek = self._keys.get(kid)
        if kek is None:
            raise BackendError(f"sealed under master key {kid}, which this keyring lacks", INTERNAL)
        raw = _unb64(wrapped)
        try:
            return kek.decrypt(raw[:_NONCE], raw[_NONCE:], b"paytoken-dek|" + kid.encode())
        except InvalidTag:
            raise BackendError(f"data key does not open under master key {kid}", INTERNAL) from None

    def open(self, envelope: str, context: str) -> bytes:
        """Decrypt an envelope sealed with ``context``. BackendError when it does not open."""
        try:
            version, kid, wrapped, body = envelope.split(".")
        except ValueError:
            raise BackendError("malformed envelope", INTERNAL) from None
        if version != _VERSION:
            raise BackendError(f"unknown envelope version {version!r}", INTERNAL)
        dek = self._unwrap(kid, wrapped)
        raw = _unb64(body)
        try:
            return AESGCM(dek).decrypt(raw[:_NONCE], raw[_NONCE:], context.encode())
        except InvalidTag:
            raise BackendError(f"envelope does not open for {context}", INTERNAL) from None

    def rewrap(self, envelope: str) -> str:
        """The same envelope with its data key re-wrapped under the current master key."""
        version, kid, wrapped, body = envelope.split(".")
        if kid == self.current_id:
            return envelope
        dek = self._unwrap(kid, wrapped)
        n2 = os.urandom(_NONCE)
        new = self._current.encrypt(n2, dek, b"paytoken-dek|" + self.current_id.encode())
        return ".".join((version, self.current_id, _b64(n2 + new), body))

    @staticmethod
    def envelope_kek(envelope: str) -> str:
        """The master-key id an envelope is wrapped under."""
        return envelope.split(".")[1]


def new_api_key(kind: str) -> str:
    """A fresh bearer key, e.g. ``ptk_live_...`` (merchant) or ``ptk_admin_...``."""
    return f"ptk_{kind}_" + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """SHA-256 of a bearer key: keys have 256 bits of entropy, so no slow hash is needed."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
