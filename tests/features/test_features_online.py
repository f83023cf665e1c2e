"""The online stores (embedded, Redis) against the offline tables, and their mechanics.

Parity: every active feature set is built on a tiny simulation and published to both
stores; every entity's online profile equals its offline row of the same as-of day, and the
"seen before" answers and lists equal the pairs derived from the events.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pytest

import features
from features.engine import active_feature_sets, profile_table
from features.online import EmbeddedReader, OnlineStore, OnlineStoreUnavailable, open_store
from features.online.base import key_hash, sorted_keys_check
from features.online.redis_store import RedisReader, RedisStore, redacted
from features.request import PAIR_FIELDS
from features.sources import FRAUD_EVENTS_SQL
from tests.support.redis_local import RedisServer
from yidai.core.errors import YidaiError

simulator = pytest.importorskip("simulator")
ingest = pytest.importorskip("yidai.ingest")

AS_OF = dt.date(2026, 4, 30)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny simulation, ingested, every active feature set built as of ``AS_OF``."""
    root = tmp_path_factory.mktemp("online_sim")
    config = simulator.SimConfig.preset(
        "tiny", n_customers=250, n_merchants=25, n_smes=15, n_mall_sellers=10, months=8
    )
    simulator.simulate(config, root / "landing", root / "truth")
    ingest.ingest_landing(root / "landing", root / "wh.duckdb")
    con = duckdb.connect(str(root / "wh.duckdb"))
    try:
        features.build_features(con, AS_OF)
    finally:
        con.close()
    return root / "wh.duckdb"


def _offline_pairs(con: duckdb.DuckDBPyConnection) -> dict[str, set[tuple[str, str]]]:
    cutoff = dt.datetime.combine(AS_OF + dt.timedelta(days=1), dt.time())
    out: dict[str, set[tuple[str, str]]] = {}
    for f in PAIR_FIELDS:
        rows = con.execute(
            f"SELECT DISTINCT CAST(payer_id AS VARCHAR), CAST({f} AS VARCHAR) "
            f"FROM ({FRAUD_EVENTS_SQL}) WHERE {f} IS NOT NULL AND ts < ?",
            [cutoff],
        ).fetchall()
        out[f] = {(str(p), str(v)) for p, v in rows}
    return out


@pytest.mark.parametrize("kind", ["embedded", "redis"])
def test_every_entity_online_equals_offline(
    simulated: Path, tmp_path: Path, redis_server: RedisServer, kind: str
) -> None:
    url = "embedded" if kind == "embedded" else redis_server.url(1)
    if kind == "redis":
        RedisStore(url).client.flushdb()
    store = open_store(url, tmp_path)
    con = duckdb.connect(str(simulated), read_only=True)
    try:
        features.publish_snapshot(con, tmp_path, AS_OF, store=store)
        names = active_feature_sets()
        assert len(names) >= 4
        for name in names:
            fs = features.get_feature_set(name)
            snap = features.load_snapshot(tmp_path, name, store)
            assert snap.snapshot_id == store.current(name)["snapshot_id"]  # type: ignore[index]
            for entity in fs.profile_entities:
                cols = fs.profile_columns(entity)
                quoted = ", ".join(f'"{c}"' for c in cols)
                offline = con.execute(
                    f"SELECT CAST(entity_id AS VARCHAR), {quoted} FROM "
                    f"{profile_table(fs, entity)} WHERE as_of = ? ORDER BY 1",
                    [AS_OF],
                ).fetchall()
                assert offline, (name, entity)
                for row in offline:
                    expected = np.array([np.nan if v is None else v for v in row[1:]], float)
                    got = snap.get(row[0], entity)
                    assert got is not None, (name, entity, row[0])
                    np.testing.assert_array_equal(got, expected, err_msg=f"{name} {entity}")
                assert snap.get("no-such-id", entity) is None
                assert snap.get(None, entity) is None  # type: ignore[arg-type]
                assert snap.entity_ids(entity) == [r[0] for r in offline]
        pairs = _offline_pairs(con)
    finally:
        con.close()
    snap = features.load_snapshot(tmp_path, features.FRAUD_FEATURE_SET, store)
    payers = sorted({p for f in PAIR_FIELDS for p, _ in pairs[f]})
    assert len(payers) > 50
    for f in PAIR_FIELDS:
        assert pairs[f]
        for payer, value in pairs[f]:
            assert snap.seen_before(payer, f, value), (f, payer, value)
        values = sorted({v for _, v in pairs[f]})
        for payer in payers[:20]:  # every value used by someone, checked for 20 payers
            for value in values[:30]:
                assert snap.seen_before(payer, f, value) == ((payer, value) in pairs[f])
        assert not snap.seen_before(payers[0], f, None)
        lists: dict[str, list[str]] = {}
        for payer, value in sorted(pairs[f]):
            lists.setdefault(payer, []).append(value)
        assert snap.seen_values([*payers, "nobody"], f) == lists


def test_embedded_arrays_are_read_in_place_and_old_folders_still_open(
    built_warehouse: Path, tmp_path: Path
) -> None:
    features.publish_snapshot(built_warehouse, tmp_path, AS_OF_SYN, ["payment_fraud_v1"])
    snap = features.load_snapshot(tmp_path, "payment_fraud_v1")
    reader = snap.reader
    assert isinstance(reader, EmbeddedReader) and reader.on_disk
    assert snap.folder is not None
    index, values = reader._profiles["payer"]
    # nothing but the fences is loaded: keys and values are read from the files
    assert values.array is None and index.hi.array is None and index.lo.array is None
    assert len(index.fence) == -(-index.n // 512)
    ids = snap.entity_ids()[:50]
    before = [snap.get(i) for i in ids]
    pairs = snap.seen_values(ids, "device_id")
    # a folder published before the arrays existed is indexed in memory, same answers
    shutil.rmtree(snap.folder / "online")
    old = features.load_snapshot(tmp_path, "payment_fraud_v1")
    assert isinstance(old.reader, EmbeddedReader) and not old.reader.on_disk
    assert all(v is not None for v in before) and snap.get("nobody") is None
    for i, vec in zip(ids, before, strict=True):
        np.testing.assert_array_equal(old.get(i), vec)
    # a pruned version stays readable by the reader that has it open
    shutil.rmtree(snap.folder)
    np.testing.assert_array_equal(snap.get(ids[0]), before[0])
    for payer, devices in pairs.items():
        assert all(old.seen_before(payer, "device_id", d) for d in devices)


AS_OF_SYN = dt.date(2026, 6, 30)  # the shared synthetic warehouse's build day


def test_key_hash_is_duckdbs_md5_halves_and_collisions_are_refused() -> None:
    texts = ["C0001", "payer\x1fdevice-9", "商户-42", ""]
    rows = duckdb.sql(
        "SELECT md5_number_upper(t), md5_number_lower(t) FROM unnest(?) AS u(t)",
        params=[texts],
    ).fetchall()
    assert [key_hash(t) for t in texts] == [(int(a), int(b)) for a, b in rows]
    hi = np.array([1, 2, 2, 3], np.uint64)
    sorted_keys_check(hi, np.array([5, 6, 7, 8], np.uint64), "ok")
    with pytest.raises(YidaiError, match="share one 128-bit hash"):
        sorted_keys_check(hi, np.array([5, 6, 6, 8], np.uint64), "ids")


def _publish(wh: Path, serving: Path, store: OnlineStore, keep: int = 2) -> str:
    out = features.publish_snapshot(
        wh, serving, AS_OF_SYN, ["sme_credit_v1"], keep=keep, store=store
    )
    return out["sme_credit_v1"].name


def test_redis_versions_switch_atomically_and_old_ones_expire(
    built_warehouse: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    store = RedisStore(redis_server.url(2), retire_seconds=120)
    store.client.flushdb()
    first = _publish(built_warehouse, tmp_path, store)
    pinned = features.load_snapshot(tmp_path, "sme_credit_v1", store)
    assert isinstance(pinned.reader, RedisReader) and pinned.snapshot_id == first
    some = pinned.entity_ids()[0]
    vec = pinned.get(some)
    assert vec is not None
    second = _publish(built_warehouse, tmp_path, store)
    assert store.current("sme_credit_v1")["snapshot_id"] == second  # type: ignore[index]
    third = _publish(built_warehouse, tmp_path, store)
    assert store.current("sme_credit_v1")["snapshot_id"] == third  # type: ignore[index]
    # the first version is retired: every one of its keys expires, the live ones do not
    tag = pinned.reader.tag
    ttls = [store.client.ttl(k) for k in store.client.scan_iter(match=f"y:{tag}:*")]
    assert ttls and all(0 < t <= 120 for t in ttls)
    live = store.current("sme_credit_v1")["redis_tag"]  # type: ignore[index]
    assert all(store.client.ttl(k) == -1 for k in store.client.scan_iter(match=f"y:{live}:*"))
    # a reader still on the retired version reads it until it is gone, then fails loudly
    np.testing.assert_array_equal(pinned.get(some), vec)
    store.client.delete(f"y:{tag}:meta")
    with pytest.raises(OnlineStoreUnavailable, match="no longer in"):
        pinned.get(some)
    assert features.load_snapshot(tmp_path, "sme_credit_v1", store).snapshot_id == third


def test_redis_unreachable_is_a_clear_error(redis_server: RedisServer, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    dead = RedisStore(f"redis://:secret@127.0.0.1:{dead_port}/0", timeout_seconds=0.2)
    with pytest.raises(OnlineStoreUnavailable, match="unreachable") as caught:
        features.load_snapshot(tmp_path, "sme_credit_v1", dead)
    assert "secret" not in str(caught.value)
    assert redacted("redis://u:pw@h:1/2") == "redis://h:1/2"
    reader = RedisReader(dead, {"snapshot_id": "s", "redis_tag": "t", "profiles": {"sme": []}})
    with pytest.raises(OnlineStoreUnavailable, match="unreachable"):
        reader.lookup([("sme", "S1")])
    with pytest.raises(YidaiError, match="expected 'embedded' or a redis"):
        open_store("memcached://x")


def test_embedded_arrays_refuse_a_null_id(tmp_path: Path) -> None:
    import pandas as pd

    from features.online.embedded import build_arrays

    pd.DataFrame({"entity_id": ["S1", None], "x": [1.0, 2.0]}).to_parquet(tmp_path / "sme.parquet")
    meta = {"feature_set": "t", "profiles": {"sme": ["x"]}}
    with pytest.raises(YidaiError, match="has no id"):
        build_arrays(tmp_path, meta)
    pd.DataFrame({"entity_id": ["S1", "S2"], "x": [1.0, None]}).to_parquet(tmp_path / "sme.parquet")
    arrays = build_arrays(tmp_path, meta)
    values = arrays["sme.values"][:, 0]
    assert np.nansum(values) == 1.0 and np.isnan(values).sum() == 1  # a null value is NaN
