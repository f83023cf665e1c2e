"""The limit refresh's scoring on Spark: the model matrix scored in partitions
(``mapInPandas``) with the champion broadcast to the executors, through the model's own
``predict_pd`` (the same function as on DuckDB, so the same PDs, the same decisions and the
same version id).  Chosen by ``YIDAI_ENGINE=spark`` (:func:`yidai.jobs.limits.refresh._predict`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from yidai.core.spark import get_spark

ROWS_PER_PARTITION = 200_000


def predict_pd_spark(model: Any, X: np.ndarray, *, partitions: int | None = None) -> np.ndarray:
    """``model.predict_pd(X)`` computed by Spark in partitions, in ``X``'s row order."""
    if len(X) == 0:
        return np.empty(0)
    spark = get_spark()
    columns = [f"x{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(np.asarray(X, dtype=np.float64), columns=columns)
    frame.insert(0, "row", np.arange(len(X), dtype=np.int64))
    n = partitions or max(2, -(-len(X) // ROWS_PER_PARTITION))
    context = getattr(spark, "sparkContext", None)
    # the champion ships once per executor (classic: a broadcast; Spark Connect: the UDF closure)
    shared = context.broadcast(model) if context is not None else None

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        champion = shared.value if shared is not None else model
        for batch in batches:
            matrix = batch[columns].to_numpy(dtype=np.float64, na_value=np.nan)
            yield pd.DataFrame({"row": batch["row"], "pd": champion.predict_pd(matrix)})

    scored = (
        spark.createDataFrame(frame)
        .repartition(n)
        .mapInPandas(score, "row long, pd double")
        .toPandas()
    )
    if shared is not None:
        shared.unpersist()
    if len(scored) != len(X):
        raise RuntimeError(f"Spark scored {len(scored)} rows of {len(X)}")
    return scored.sort_values("row")["pd"].to_numpy(dtype=np.float64)
