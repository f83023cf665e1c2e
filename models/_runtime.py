"""Process-level set-up for the native libraries the models use."""

from __future__ import annotations

import os
import sys
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


def import_lightgbm_for_scoring() -> ModuleType:
    """:func:`import_lightgbm` for a process that only scores boosters on NumPy rows (a
    service worker).  LightGBM imports scikit-learn (and much of SciPy) only for its
    estimator classes: it is refused for good in this process (about 55 MB; importing it
    raises ImportError, never a silent change).  It imports pandas and pyarrow only to
    accept their frames: they are hidden during the import (pandas alone is 0.8 s of a
    worker's start), and code that needs them later still imports them."""
    sys.modules.setdefault("sklearn", None)  # type: ignore[arg-type]
    hidden = [name for name in ("pandas", "pyarrow") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        return import_lightgbm()
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
