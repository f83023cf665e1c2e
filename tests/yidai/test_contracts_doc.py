"""docs/data-contracts.md is generated from the code and must be up to date."""

from __future__ import annotations

from pathlib import Path

from yidai.core.contracts import CONTRACTS
from yidai.core.contracts_doc import render_contracts_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-contracts.md"


def test_data_contracts_doc_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == render_contracts_markdown(), (
        "docs/data-contracts.md is stale: run `yidai contracts --write docs/data-contracts.md`"
    )


def test_doc_lists_every_contract_and_column() -> None:
    text = render_contracts_markdown()
    for contract in CONTRACTS.values():
        assert f"## `{contract.name}` ({contract.kind})" in text
        for column in contract.columns:
            assert f"| `{column.name}` | {column.dtype} |" in text
