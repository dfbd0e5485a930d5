"""The batch file: what an issuer hands an offline factory station.

A batch is a range of token ids (``first_id`` .. ``first_id + count - 1``, pending in
the issuer, so nothing else takes them) plus two keys sealed with AES-128-GCM under
the pre-shared key: the scheme key of the batch's prefix, and the batch's sync master,
from which each token's sync key is derived (``sync_key``). The whole header is the
GCM associated data, so a changed range, prefix or key id does not open.

Usage::

    data = seal(header, scheme_key, sync_master, psk)    # the issuer
    header, scheme_key, sync_master = unseal(data, psk)  # the station

The file is JSON and holds no key in the clear; it is still written 0600.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import asdict, dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from paytoken.pskc import psk_id

FORMAT = "paytoken-batch/1"
SYNC_MASTER_BYTES = 32
SCHEME_KEY_BYTES = 16
MAX_COUNT = 10_000


class BatchError(Exception):
    """A batch file that does not open or is malformed; the message is safe to show."""


@dataclass(frozen=True)
class Batch:
    """A batch's public header."""

    batch_id: str
    prefix: str
    first_id: int
    count: int
    psk_id: str
    created_at: int

    @property
    def last_id(self) -> int:
        return self.first_id + self.count - 1

    def holds(self, token_id: int) -> bool:
        return self.first_id <= token_id <= self.last_id

    def ids(self) -> range:
        return range(self.first_id, self.first_id + self.count)


def _aad(b: Batch) -> bytes:
    return json.dumps({"format": FORMAT, **asdict(b)}, sort_keys=True, separators=(",", ":")).encode()


def sync_key(sync_master: bytes, token_id: int) -> bytes:
    """Token ``token_id``'s sync key (20 bytes): ``HMAC-SHA256(master, 'paytoken-sync-key|id')``."""
    return hmac.new(sync_master, b"paytoken-sync-key|%08d" % token_id, hashlib.sha256).digest()[:20]


def seal(b: Batch, scheme_key: bytes, sync_master: bytes, psk: bytes) -> bytes:
    """The batch file's bytes."""
    if len(scheme_key) != SCHEME_KEY_BYTES or len(sync_master) != SYNC_MASTER_BYTES:
        raise BatchError("a batch seals a 16-byte scheme key and a 32-byte sync master")
    if b.psk_id != psk_id(psk):
        raise BatchError("the header names another pre-shared key")
    nonce = os.urandom(12)
    ct = AESGCM(psk).encrypt(nonce, scheme_key + sync_master, _aad(b))
    doc = {"format": FORMAT, **asdict(b), "sealed": base64.b64encode(nonce + ct).decode("ascii")}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def header(data: bytes) -> Batch:
    """The header of a batch file, unverified (for messages before the key is known)."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError
        b = Batch(batch_id=str(doc["batch_id"]), prefix=str(doc["prefix"]),
                  first_id=int(doc["first_id"]), count=int(doc["count"]),
                  psk_id=str(doc["psk_id"]), created_at=int(doc["created_at"]))
    except (ValueError, KeyError, TypeError):
        raise BatchError(f"not a batch file (expected JSON of format {FORMAT})") from None
    if not 1 <= b.count <= MAX_COUNT or not 0 <= b.first_id or b.last_id > 99_999_999:
        raise BatchError("the batch's id range is out of bounds")
    return b


def unseal(data: bytes, psk: bytes) -> tuple[Batch, bytes, bytes]:
    """``(header, scheme_key, sync_master)``; BatchError for a wrong key or a changed file."""
    b = header(data)
    if b.psk_id != psk_id(psk):
        raise BatchError(f"wrong pre-shared key: batch {b.batch_id} was made for key "
                         f"{b.psk_id}, this key is {psk_id(psk)}")
    try:
        raw = base64.b64decode(json.loads(data)["sealed"], validate=True)
        plain = AESGCM(psk).decrypt(raw[:12], raw[12:], _aad(b))
    except (InvalidTag, ValueError, KeyError, TypeError):
        raise BatchError(f"batch {b.batch_id} does not open: the file was altered") from None
    if len(plain) != SCHEME_KEY_BYTES + SYNC_MASTER_BYTES:
        raise BatchError(f"batch {b.batch_id} holds keys of the wrong size")
    return b, plain[:SCHEME_KEY_BYTES], plain[SCHEME_KEY_BYTES:]
