"""Online stores of published feature snapshots: one interface, two implementations.

``YIDAI_ONLINE_STORE`` chooses: ``embedded`` (default; the snapshot folders, memory-mapped,
see :mod:`features.online.embedded`) or a ``redis://`` / ``rediss://`` URL
(:mod:`features.online.redis_store`).  :func:`open_store` returns the configured one.
"""

from __future__ import annotations

import threading
from pathlib import Path

from features.online.base import (
    OnlineStore,
    OnlineStoreUnavailable,
    SnapshotReader,
    key_hash,
)
from features.online.embedded import EmbeddedReader, EmbeddedStore
from yidai.core.errors import YidaiError
from yidai.core.settings import get_settings

__all__ = [
    "EmbeddedReader",
    "EmbeddedStore",
    "OnlineStore",
    "OnlineStoreUnavailable",
    "SnapshotReader",
    "key_hash",
    "open_store",
]

_REMOTE: dict[tuple[str, float], OnlineStore] = {}
_LOCK = threading.Lock()


def open_store(
    url: str | None = None,
    serving_dir: Path | str | None = None,
    timeout_seconds: float | None = None,
) -> OnlineStore:
    """The online store named by ``url`` (default: the ``online_store`` setting); the
    embedded store reads ``serving_dir`` (default: the settings' serving folder).  Remote
    stores are shared per URL (one connection pool per process)."""
    settings = get_settings()
    url = url or settings.online_store
    if url == "embedded":
        return EmbeddedStore(Path(serving_dir) if serving_dir is not None else settings.serving)
    if url.startswith(("redis://", "rediss://", "unix://")):
        key = (url, timeout_seconds or settings.online_store_timeout_seconds)
        with _LOCK:
            if key not in _REMOTE:
                # deferred: the Redis module imports the redis client
                from features.online.redis_store import RedisStore

                _REMOTE[key] = RedisStore(url, timeout_seconds=key[1])
            return _REMOTE[key]
    raise YidaiError(f"online store {url!r}: expected 'embedded' or a redis:// URL")
