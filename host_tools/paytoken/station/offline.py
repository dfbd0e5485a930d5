"""The offline issuer: a factory station that never reaches the issuer.

It takes token ids from a batch file (``paytoken batch create``), derives each token's
sync key from the batch's sync master, and records each finished token as one PSKC
key package in ``pskc_out`` (the secret encrypted under the pre-shared key). The
issuer activates them later (``paytoken token import``).

Which ids of the batch are spent is kept beside the batch in ``<batch>.used`` (JSON,
no secrets, rewritten atomically under a lock), so parallel ports, parallel stations
on one batch file and re-runs never hand an id out twice. An id whose run failed is
spent all the same ("discarded"): ids are cheap, and a reused one could end up on two
tokens.

Usage::

    issuer = OfflineIssuer(Path("batch.json"), psk, Path("tokens.pskc"))
    Station(issuer, board="sim").run(ports)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import paycode

from paytoken import pskc
from paytoken.backend.store.models import ACTIVE, PENDING
from paytoken.batch import BatchError, sync_key, unseal
from paytoken.station import ops

ALLOCATED, DONE, DISCARDED = "allocated", "done", "discarded"


class OfflineIssuer:
    """An ``Issuer`` over a batch file, its ledger and a PSKC output file."""

    def __init__(self, batch_path: Path, psk: bytes, pskc_out: Path) -> None:
        self.batch_path = Path(batch_path)
        self.pskc_out = Path(pskc_out)
        self.ledger_path = self.batch_path.with_name(self.batch_path.name + ".used")
        self._psk = psk
        try:
            data = self.batch_path.read_bytes()
        except OSError as exc:
            raise ops.OpsError("setup", f"cannot read the batch {batch_path}: "
                               f"{exc.strerror or exc.__class__.__name__}") from None
        try:
            self.batch, self._scheme_key, self._sync_master = unseal(data, psk)
        except BatchError as e:
            raise ops.OpsError("setup", str(e)) from None
        if self.pskc_out.exists():  # it must open under this key, or nothing could be appended
            try:
                pskc.read_file(self.pskc_out, psk)
            except pskc.PskcError as e:
                raise ops.OpsError("setup", f"{self.pskc_out}: {e}") from None
        with pskc.locked(self.ledger_path):
            led = self._load()
        if led.get("batch") not in (None, self.batch.batch_id):
            raise ops.OpsError("setup", f"{self.ledger_path} belongs to batch {led['batch']}, "
                               f"not {self.batch.batch_id}")

    def __repr__(self) -> str:  # never show the keys
        return f"OfflineIssuer(batch={self.batch.batch_id}, pskc_out={str(self.pskc_out)!r})"

    @property
    def prefix(self) -> str:
        return self.batch.prefix

    # ---- the ledger -------------------------------------------------------------------

    def _load(self) -> dict:
        try:
            led = json.loads(self.ledger_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"batch": self.batch.batch_id, "ids": {}}
        except (OSError, ValueError) as exc:
            raise ops.OpsError("setup", f"cannot read the batch ledger {self.ledger_path}: "
                               f"{exc.__class__.__name__}") from None
        if not isinstance(led, dict) or not isinstance(led.get("ids"), dict):
            raise ops.OpsError("setup", f"{self.ledger_path} is not a batch ledger")
        return led

    def _save(self, led: dict) -> None:
        pskc.write_private(self.ledger_path, (json.dumps(led, indent=1, sort_keys=True) + "\n").encode())

    def _set(self, token_id: int, state: str, actor: str) -> None:
        with pskc.locked(self.ledger_path):
            led = self._load()
            led["ids"][f"{token_id:08d}"] = {"state": state, "by": actor, "at": int(time.time())}
            self._save(led)

    def used(self) -> dict[int, str]:
        """Every spent id of the batch and its state."""
        with pskc.locked(self.ledger_path):
            return {int(k): v["state"] for k, v in self._load()["ids"].items()}

    # ---- the Issuer calls ---------------------------------------------------------------

    def scheme_key(self, prefix: str) -> bytes | None:
        return self._scheme_key if prefix == self.batch.prefix else None

    def scheme_format(self, prefix: str) -> int:
        # A batch is of format 1: its PSKC carries HOTP-SHA1 TOTP parameters, and
        # batches.create_batch refuses a scheme of another format.
        return 1

    def allocate(self, actor: str) -> tuple[int, bytes]:
        with pskc.locked(self.ledger_path):
            led = self._load()
            spent = led["ids"]
            tid = next((i for i in self.batch.ids() if f"{i:08d}" not in spent), None)
            if tid is None:
                raise ops.OpsError("allocate", f"batch {self.batch.batch_id} is used up "
                                   f"({self.batch.count} of {self.batch.count} ids spent): "
                                   "ask the issuer for another batch")
            spent[f"{tid:08d}"] = {"state": ALLOCATED, "by": actor, "at": int(time.time())}
            self._save(led)
        return tid, sync_key(self._sync_master, tid)

    def status(self, token_id: int) -> str | None:
        if not self.batch.holds(token_id):
            return None
        state = self.used().get(token_id)
        if state is None:
            return None  # never handed out here: a token with this id is not ours
        if state != DONE and self._in_pskc(token_id):
            state = DONE  # cut between the PSKC write and the ledger's
        return ACTIVE if state == DONE else PENDING

    def _in_pskc(self, token_id: int) -> bool:
        if not self.pskc_out.exists():
            return False
        with pskc.locked(self.pskc_out):
            return f"{token_id:08d}" in pskc.serials(self.pskc_out.read_bytes())

    def discard(self, token_id: int, actor: str) -> None:
        if self.batch.holds(token_id) and self.used().get(token_id) != DONE:
            self._set(token_id, DISCARDED, actor)

    def unlock_mac(self, token_id: int, nonce: str, actor: str) -> str:
        if not self.batch.holds(token_id):
            raise ops.OpsError("check", f"token {token_id:08d} is not of batch {self.batch.batch_id}")
        return paycode.sync_mac(sync_key(self._sync_master, token_id), "UNLOCK", nonce, token_id)

    def expected_codes(self, token_id: int, secret: bytes, prefix: str, times: list[int]) -> list[str]:
        if prefix != self.batch.prefix:
            raise ops.OpsError("verify", f"batch {self.batch.batch_id} is for prefix {self.batch.prefix}")
        return ops.host_codes(secret, token_id, times, self._scheme_key, prefix)

    def activate(self, token_id: int, secret: bytes, sync_key_: bytes, prefix: str, *,
                 actor: str, drift_ppm: float | None) -> None:
        # The clock was just set to UTC and verified: the drift is 0 time steps.
        try:
            pskc.append_file(self.pskc_out, [pskc.KeyPackage(
                serial=f"{token_id:08d}", secret=secret, drift=0, issuer=f"paytoken {prefix}")],
                self._psk)
        except pskc.PskcError as e:
            raise ops.OpsError("activate", f"{self.pskc_out}: {e}") from None
        self._set(token_id, DONE, actor)
