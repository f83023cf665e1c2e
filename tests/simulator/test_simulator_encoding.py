"""Id formatting and Arrow encoding of simulated rows (the fast paths agree with the plain one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simulator.landing import (
    ID_CACHE_LIMIT,
    TOKEN_WIDTH,
    Batch,
    card_tokens,
    encode,
    format_ids,
    parquet_options,
)
from yidai.core.contracts import CONTRACTS


def _plain(codes: np.ndarray, prefix: str, width: int) -> list[str]:
    return [f"{prefix}{int(c):0{width}d}" for c in codes]


def test_format_ids_cached_and_uncached_codes_agree_with_plain_formatting() -> None:
    rng = np.random.default_rng(3)
    small = rng.integers(0, 5000, 300)
    big = rng.integers(ID_CACHE_LIMIT, 99_999_999, 300)
    mixed = np.concatenate([small, big, [0, ID_CACHE_LIMIT - 1, ID_CACHE_LIMIT]])
    rng.shuffle(mixed)
    for codes in (small, big, mixed, np.zeros(0, np.int64)):
        out = format_ids(codes, "C", 8)
        assert out.type == pa.string()
        assert out.to_pylist() == _plain(codes, "C", 8)
    events = rng.integers(0, 10**13, 200)
    assert format_ids(events, "P", 13).to_pylist() == _plain(events, "P", 13)
    with pytest.raises(ValueError, match="out of range"):
        format_ids(np.array([10**8]), "C", 8)
    with pytest.raises(ValueError, match="out of range"):
        format_ids(np.array([-1]), "C", 8)


def test_encode_handles_poly_ids_card_tokens_nulls_and_vocabularies() -> None:
    n = 6
    customer = np.array([0, 3, 7, 0, 0, 12])
    card = np.array([5, 1 << 40, 9, 2, 3, 4])  # the second is another bank's card
    batch = Batch(
        "pos_transactions",
        {
            "txn_id": np.arange(n) + 10**9,
            "ts": np.arange(n) * 1_000_000,
            "card_token": card,
            "customer_id": customer,
            "merchant_id": np.array([1, 2, 3, 4, 5, ID_CACHE_LIMIT + 7]),
            "terminal_id": np.arange(n),
            "mcc": np.array([0, 1, 2, 3, 4, 5]),
            "amount": np.array([1.5, 2.0, -3.0, 4.25, 5.0, 6.0]),
            "entry_mode": np.array([0, 1, 2, 3, 0, 1]),
            "status": np.array([0, 1, 2, 3, 0, 0]),
        },
        np.zeros(n, np.int64),
        {"customer_id": np.array([False, True, False, False, False, False]),
         "status": np.array([False, False, False, False, True, False])},
    )  # fmt: skip
    table = encode(batch)
    contract = CONTRACTS["pos_transactions"]
    assert table.column_names == contract.column_names
    rows = table.to_pylist()
    assert [r["customer_id"] for r in rows] == ["C00000000", None, "C00000007", "C00000000",
                                                "C00000000", "C00000012"]  # fmt: skip
    assert rows[5]["merchant_id"] == f"M{ID_CACHE_LIMIT + 7:08d}"
    assert [r["card_token"] for r in rows] == _plain(card_tokens(card), "tk", TOKEN_WIDTH)
    status = contract.column("status").allowed
    assert status is not None
    assert [r["status"] for r in rows] == [status[0], status[1], status[2], status[3], None,
                                           status[0]]  # fmt: skip
    assert rows[2]["amount"] == -3.0
    payments = Batch(
        "fraud_reports",
        {
            "report_id": np.arange(3),
            "reported_at": np.arange(3),
            "ref_type": np.array([0, 1, 0]),
            "ref_id": np.array([11, 22, 33]),
            "fraud_type": np.array([0, 1, 2]),
            "amount": np.ones(3),
        },
        np.zeros(3, np.int64),
    )
    refs = encode(payments).column("ref_id").to_pylist()
    assert refs == ["P0000000000011", "Y0000000000022", "P0000000000033"]


def test_written_files_use_dictionaries_for_vocabularies_and_no_id_statistics(
    tmp_path: Path,
) -> None:
    n = 50
    batch = Batch(
        "payments",
        {
            "payment_id": np.arange(n),
            "ts": np.arange(n) * 10**6,
            "payer_type": np.zeros(n, np.int64),
            "payer_id": np.arange(n),
            "payment_type": np.ones(n, np.int64),
            "bill_category": np.zeros(n, np.int64),
            "counterparty_id": np.arange(n),
            "amount": np.linspace(1, 50, n),
            "channel": np.zeros(n, np.int64),
            "device_id": np.arange(n),
            "status": np.zeros(n, np.int64),
            "due_date": np.full(n, 20_000),
        },
        np.zeros(n, np.int64),
    )
    path = tmp_path / "part.parquet"
    pq.write_table(encode(batch), path, **parquet_options("payments"))  # type: ignore[arg-type]
    meta = pq.ParquetFile(path).metadata.row_group(0)
    columns = {meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)}
    assert columns["payment_id"].statistics is None
    assert columns["amount"].statistics is not None
    assert columns["amount"].statistics.min == 1.0
    assert "RLE_DICTIONARY" in columns["channel"].encodings
    assert "RLE_DICTIONARY" not in columns["payment_id"].encodings
    assert columns["amount"].compression == "SNAPPY"
    assert pq.read_table(path).num_rows == n
