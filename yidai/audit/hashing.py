"""The keyed request hash: what is stored of a request's fingerprint, and replay checks.

A request's fingerprint (``request_hash``, used to refuse an idempotency key reused for a
different request) is stored keyed: HMAC-SHA256 under a secret key (:func:`load_hash_key`:
``YIDAI_AUDIT_HASH_KEY``, else a random key created once in a 0600 file), so identifiers in
the request (a card token is never stored) cannot be recovered from the store by hashing
candidate requests.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from yidai.core.errors import YidaiError

if TYPE_CHECKING:
    from yidai.core.settings import Settings

HASH_KEY_BYTES = 32
# Stores opened without a key (tools, tests) share one random key per process.
_PROCESS_HASH_KEY = secrets.token_bytes(HASH_KEY_BYTES)


class IdempotencyConflict(YidaiError):
    """The idempotency key was already used for a different request."""


def load_hash_key(settings: Settings) -> bytes:
    """The secret key of stored request hashes: ``settings.audit_hash_key`` if set, else the
    key in ``settings.audit_hash_key_file``, created (32 random bytes, hex, mode 0600) the first
    time.  Stable across restarts, so idempotency conflicts are still detected after one."""
    if settings.audit_hash_key is not None:
        return settings.audit_hash_key.get_secret_value().encode()
    path = settings.audit_hash_key_file
    assert path is not None
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(HASH_KEY_BYTES) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # never replaces a key another worker created first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError) as exc:
        raise YidaiError(f"audit hash key file {path} is unreadable or malformed: {exc}") from exc
    if len(key) < 16:
        raise YidaiError(f"audit hash key file {path} holds fewer than 16 bytes")
    return key


def load_previous_hash_keys(settings: Settings) -> tuple[bytes, ...]:
    """The audit hash key of before the last rotation (``audit_hash_key_previous``), if any."""
    previous = settings.audit_hash_key_previous
    return () if previous is None else (previous.get_secret_value().encode(),)


class RequestHasher:
    """HMAC-SHA256 digests of request fingerprints under the current key, and the check of a
    stored digest against a request (current key, a previous key, or the plain fingerprint).

    ``hash_key`` None: a random key of this process (conflicts are then detected only within
    it).  ``previous_hash_keys``: keys of before a rotation, whose stored hashes still match.
    """

    def __init__(self, hash_key: bytes | None = None, previous: Sequence[bytes] = ()) -> None:
        self._hasher = hmac.new(hash_key or _PROCESS_HASH_KEY, digestmod=hashlib.sha256)
        self._previous = [hmac.new(k, digestmod=hashlib.sha256) for k in previous]

    def digest(self, request_hash: str) -> str:
        """What is stored for a request fingerprint: its HMAC-SHA256 under the current key."""
        hasher = self._hasher.copy()
        hasher.update(request_hash.encode())
        return hasher.hexdigest()

    def check_replay(self, stored_digest: str, request_hash: str, key: str) -> None:
        """Raise :class:`IdempotencyConflict` unless ``stored_digest`` (of the row stored for
        idempotency key ``key``) was stored for this request.  It may be under the current
        key, a previous key (a rotation) or the plain fingerprint (a row written before
        digests were keyed)."""
        accepted = [self.digest(request_hash)]
        for previous in self._previous:
            hasher = previous.copy()
            hasher.update(request_hash.encode())
            accepted.append(hasher.hexdigest())
        accepted.append(request_hash)
        if not any(hmac.compare_digest(stored_digest, digest) for digest in accepted):
            raise IdempotencyConflict(
                f"Idempotency-Key {key!r} was already used for a different request"
            )
