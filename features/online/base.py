"""The online store's interface: one published snapshot version, read by the scoring service.

A store holds versions of each feature set's snapshot (profiles by entity and id, the payers'
"seen before" pairs, the snapshot's metadata) and a pointer naming the live version.  A
:class:`SnapshotReader` is pinned to one version, so a decision that reads through one reader
reads one version, whatever is published meanwhile.

Keys are 128-bit hashes (MD5 of the UTF-8 id, or of ``payer \\x1f value`` for a pair), split
in two unsigned 64-bit halves.  An absent key is mistaken for a present one only if its 128
bits equal one of the n stored keys': probability n / 2**128 per lookup, about 1.5e-31 for
50 million pairs (target: below 1e-12).  Two stored keys with one hash are refused at publish
time, so the answers are exact.  The ids are bank-assigned, and forging a value with the hash
of an existing pair would need an MD5 second preimage (no attack is known).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from yidai.core.errors import YidaiError

PAIR_SEPARATOR = "\x1f"

ProfileKey = tuple[str, str | None]  # (entity, entity id); a None id is "no such entity"
PairKey = tuple[str, str, str | None]  # (field, payer id, value); a None value is never seen


class OnlineStoreUnavailable(YidaiError):
    """The online store cannot be read (unreachable, timed out): no decision on missing
    features (the scoring service answers 503 with this reason)."""


def key_hash(text: str) -> tuple[int, int]:
    """The 128-bit key of ``text`` as (upper, lower) 64-bit halves: the little-endian halves
    of its MD5 digest, as DuckDB's ``md5_number_upper`` / ``md5_number_lower`` give them."""
    digest = hashlib.md5(text.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little")


def pair_text(payer_id: str, value: str) -> str:
    """The key text of a (payer, value) pair."""
    return f"{payer_id}{PAIR_SEPARATOR}{value}"


class SnapshotReader(ABC):
    """One published version of one feature set's snapshot (read-only, thread-safe)."""

    meta: dict[str, Any]

    @property
    def snapshot_id(self) -> str:
        return str(self.meta["snapshot_id"])

    @abstractmethod
    def lookup(
        self, profiles: Sequence[ProfileKey], pairs: Sequence[PairKey] = ()
    ) -> tuple[list[np.ndarray | None], list[bool]]:
        """Profile vectors (None: no profile row) and seen-before answers of one decision,
        in one read (one round trip for a remote store)."""

    def profile(self, entity: str, entity_id: str | None) -> np.ndarray | None:
        """One entity's profile vector (``meta['profiles'][entity]`` order), or None."""
        return self.lookup([(entity, entity_id)])[0][0]

    @abstractmethod
    def seen_values(self, payer_ids: Collection[str], field: str) -> dict[str, list[str]]:
        """The values of ``field`` each payer used before the snapshot's end, sorted
        (payers with none are left out)."""

    @abstractmethod
    def entity_ids(self, entity: str) -> list[str]:
        """Every id with a profile of ``entity`` (sorted)."""

    def close(self) -> None:  # noqa: B027 - optional for readers holding nothing
        """Release what the reader holds (mapped files are released with the reader)."""


class OnlineStore(ABC):
    """Where published snapshots live for the service: versions and a live pointer."""

    kind: str

    @abstractmethod
    def write_version(self, folder: Path, meta: dict[str, Any]) -> None:
        """Store the snapshot version written in ``folder`` (its parquet files and its
        embedded arrays), not yet live."""

    @abstractmethod
    def switch(self, feature_set: str, meta: dict[str, Any], keep: int) -> None:
        """Make the version ``meta['snapshot_id']`` live (atomically) and retire versions
        beyond the newest ``keep``."""

    @abstractmethod
    def current(self, feature_set: str) -> dict[str, Any] | None:
        """The live version's metadata, or None when nothing is published."""

    @abstractmethod
    def open(self, meta: dict[str, Any]) -> SnapshotReader:
        """A reader pinned to the version ``meta['snapshot_id']``."""


def sorted_keys_check(hi: np.ndarray, lo: np.ndarray, what: str) -> None:
    """Refuse two stored keys with one 128-bit hash (the answers would not be exact)."""
    if len(hi) > 1:
        same = (hi[1:] == hi[:-1]) & (lo[1:] == lo[:-1])
        if bool(same.any()):
            raise YidaiError(f"{what}: two keys share one 128-bit hash; nothing published")
