"""Process-level set-up for the native libraries the models use."""

from __future__ import annotations

import os
from types import ModuleType


def import_lightgbm() -> ModuleType:
    """``import lightgbm`` with OpenMP threads that sleep when idle.

    With the default busy-waiting, two OpenMP threads on a shared, oversubscribed 2-core
    machine train several times slower than one; passive waiting removes that cliff.  Only
    effective if set before the OpenMP runtime starts (an explicit setting is respected).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # heavy: LightGBM
    import lightgbm

    return lightgbm
