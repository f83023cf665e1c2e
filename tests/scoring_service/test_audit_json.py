"""The JSON the audit store writes (orjson) says what json.dumps(default=str) said: same
values, key order and non-ASCII text; numpy scalars and datetimes as before; non-finite
floats as null (valid JSON) instead of json's NaN / Infinity tokens."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from yidai.audit import AuditStore, DecisionRow


def _old(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)


def _record(tmp_path: Path, response: dict[str, Any], record: dict[str, Any]) -> tuple[str, Any]:
    store = AuditStore(f"sqlite:///{tmp_path / 'audit.db'}")
    try:
        sent = store.record_decision(
            DecisionRow(
                decision_id="d1",
                module="m",
                idempotency_key=None,
                request_hash="h",
                product="personal",
                entity_id="C1",
                outcome="approve",
                arm="champion",
                model_version="personal_pd:1",
                policy_version="p1",
                response=response,
                record=record,
            )
        )
        return sent, store.get_decision("d1")
    finally:
        store.close()


def test_responses_and_records_read_back_as_json_dumps_wrote_them(tmp_path: Path) -> None:
    response = {
        "decision_id": "d1", "created_at": "2026-12-04T10:00:00.000001+00:00",
        "applicant_id": "客户-逸贷", "pd": 1e-05, "score": 612.5, "limit": 0.0,
        "requested_amount": None, "term_options": [{"months": 3, "annual_rate": 0.1299}],
        "reason_codes": [{"code": "HR_NO_HISTORY", "text_zh": "无历史记录"}],
    }  # fmt: skip
    record = {
        "request": {"customer_id": "C1", "requested_amount": 1500.0},
        "features": {"f_float64": np.float64(0.25), "f_missing": None, "f_big": 1.5e16},
        "numpy_scalars": [np.float32(0.5), np.int64(3), np.bool_(True)],
        "at": dt.datetime(2026, 12, 4, 10, 0),
        "by_term": {3: "short"},
    }  # fmt: skip
    sent, stored = _record(tmp_path, response, record)
    assert sent.isascii() is False and "客户-逸贷" in sent  # UTF-8, not \u escapes
    assert list(json.loads(sent)) == list(response)  # key order kept
    assert json.loads(sent) == json.loads(_old(response))
    assert stored["response"] == json.loads(sent)
    assert stored["record"] == json.loads(_old(record))
    assert stored["record"]["features"]["f_float64"] == 0.25  # a number, as before
    assert stored["record"]["numpy_scalars"] == ["0.5", "3", "True"]  # str(), as before
    assert stored["record"]["at"] == "2026-12-04 10:00:00"


def test_an_integer_beyond_64_bits_is_still_written(tmp_path: Path) -> None:
    _, stored = _record(tmp_path, {"decision_id": "d1"}, {"huge": 2**70, "x": 0.5})
    assert stored["record"] == {"huge": 2**70, "x": 0.5}


def test_non_finite_floats_are_written_as_null(tmp_path: Path) -> None:
    record = {"features": {"a": float("nan"), "b": float("inf"), "c": np.float64("-inf")}}
    sent, stored = _record(tmp_path, {"decision_id": "d1", "pd": float("nan")}, record)
    assert sent == '{"decision_id":"d1","pd":null}'
    assert stored["record"] == {"features": {"a": None, "b": None, "c": None}}
