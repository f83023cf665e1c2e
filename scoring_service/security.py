"""API keys of calling modules: created once, stored only as salted SHA-256 hashes.

A key looks like ``yd_<key_id>_<secret>``; the file (``settings.api_keys_file``) maps each
``key_id`` to its module, scopes and ``sha256(salt + secret)``.  The secret is 32 random
bytes, so a fast hash is safe (there is nothing to brute-force) and verification costs
microseconds per request.

A key may expire (``expires_at``, set at creation) and may be revoked (``revoked_at``, set by
``yidai keys revoke``); either way it is refused from then on.  The service re-reads the file
every ``service_reload_seconds``, so a revocation takes effect within that delay.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from yidai.core.errors import YidaiError

SCOPES: dict[str, str] = {
    "personal-credit": "POST /v1/decisions/personal-credit",
    "merchant-credit": "POST /v1/decisions/merchant-credit",
    "sme-credit": "POST /v1/decisions/sme-credit",
    "drawdowns": "POST /v1/drawdowns",
    "repayments": "POST /v1/repayments",
    "lines-read": "GET /v1/lines/{account_id}",
    "payment-risk": "POST /v1/payments/risk",
    "decisions-read": "GET /v1/decisions/{id}",
    "limits-read": "GET /v1/merchants/{id}/limit",
    "ops": "GET /metrics and the detailed GET /readyz (when YIDAI_OPS_ENDPOINTS_REQUIRE_KEY)",
}
_MODULE_RE = re.compile(r"^[a-z][a-z0-9_\-]{1,63}$")
_KEY_RE = re.compile(r"^yd_([a-f0-9]{12})_([A-Za-z0-9_\-]{20,100})$")


@dataclass(frozen=True)
class ApiKey:
    """A calling module's key (without its secret)."""

    key_id: str
    module: str
    scopes: frozenset[str]
    salt: str
    digest: str
    created_at: str = ""
    expires_at: str | None = None  # ISO-8601 UTC; None: never expires
    revoked_at: str | None = None  # ISO-8601 UTC; None: not revoked
    # expires_at as seconds since the epoch (inf: never), compared on every request
    expires_ts: float = float("inf")

    def state(self, now: float | None = None) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if (time.time() if now is None else now) >= self.expires_ts else "active"


def _timestamp(iso: str | None) -> float:
    """Seconds since the epoch of an ISO time (UTC if it names no zone); inf for None."""
    if iso is None:
        return float("inf")
    stamp = datetime.fromisoformat(iso)
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256((salt + secret).encode()).hexdigest()


class KeyRing:
    """The keys of every calling module, read from the key file."""

    def __init__(self, keys: dict[str, ApiKey]) -> None:
        self.keys = keys

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        """Read the key file (no file: no keys, every call gets 401)."""
        if not path.exists():
            return cls({})
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            keys = {
                k["key_id"]: ApiKey(
                    k["key_id"],
                    k["module"],
                    frozenset(k["scopes"]),
                    k["salt"],
                    k["sha256"],
                    k.get("created_at", ""),
                    k.get("expires_at"),
                    k.get("revoked_at"),
                    _timestamp(k.get("expires_at")),
                )
                for k in data["keys"]
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise YidaiError(f"API key file {path} is unreadable or malformed: {exc}") from exc
        return cls(keys)

    def verify(self, presented: str) -> ApiKey | None:
        """The key matching ``presented``, or None (also for a revoked or expired key)."""
        match = _KEY_RE.match(presented)
        if match is None:
            return None
        key = self.keys.get(match.group(1))
        if key is None or key.revoked_at is not None or time.time() >= key.expires_ts:
            return None
        ok = hmac.compare_digest(key.digest, _digest(key.salt, match.group(2)))
        return key if ok else None


@contextmanager
def _editing(path: Path) -> Iterator[dict[str, Any]]:
    """The key file's content to change, written back atomically (0600) under a lock, so two
    ``yidai keys`` commands at once do not lose each other's change."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data: dict[str, Any] = {"keys": []}
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
        yield data
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)


def create_key(
    path: Path, module: str, scopes: list[str], *, expires_in_days: float | None = None
) -> tuple[str, ApiKey]:
    """Create a key for ``module`` with ``scopes``; returns (the key, shown once; its record).

    ``expires_in_days``: refused from then on (None: never expires).  Only the salted hash is
    written (atomically) to ``path``.
    """
    if not _MODULE_RE.match(module):
        raise YidaiError(
            f"module name {module!r} must be 2-64 lowercase letters, digits, '_' or '-'"
        )
    unknown = sorted(set(scopes) - set(SCOPES))
    if not scopes or unknown:
        raise YidaiError(
            f"unknown scope(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(SCOPES)}"
        )
    # heavy: loads SQLAlchemy
    from yidai.audit import utc_now

    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    created = utc_now()
    expires = None
    if expires_in_days is not None:
        expires = (datetime.fromisoformat(created) + timedelta(days=expires_in_days)).isoformat(
            timespec="seconds"
        )
    record = ApiKey(
        key_id, module, frozenset(scopes), salt, _digest(salt, secret), created, expires,
        None, _timestamp(expires),
    )  # fmt: skip
    with _editing(path) as data:
        data["keys"].append(
            {
                "key_id": key_id,
                "module": module,
                "scopes": sorted(scopes),
                "salt": salt,
                "sha256": record.digest,
                "created_at": record.created_at,
                "expires_at": expires,
                "revoked_at": None,
            }
        )
    return f"yd_{key_id}_{secret}", record


def revoke_key(path: Path, key_id: str) -> str:
    """Revoke the key ``key_id`` (kept in the file, refused from the service's next reload);
    returns when it was revoked (the first time, if it already was)."""
    with _editing(path) as data:
        for entry in data["keys"]:
            if entry["key_id"] == key_id:
                if not entry.get("revoked_at"):
                    entry["revoked_at"] = datetime.now(UTC).isoformat(timespec="seconds")
                return str(entry["revoked_at"])
    raise YidaiError(f"no key {key_id!r} in {path}")
