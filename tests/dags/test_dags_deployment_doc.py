"""docs/deployment.md documents every setting, so production needs no code change."""

from __future__ import annotations

from pathlib import Path

from yidai.core.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"


def test_every_yidai_setting_is_documented_for_deployment() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [
        f"YIDAI_{name.upper()}"
        for name in Settings.model_fields
        if f"`YIDAI_{name.upper()}`" not in text
    ]
    assert missing == []
