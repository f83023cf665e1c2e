"""A champion as the monitoring job reads it from the registry (name, version, the features
it scores, its metadata), for tests that monitor scored rows without training a model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Champion:
    name: str
    version: str
    feature_names: list[str]
    feature_set: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
