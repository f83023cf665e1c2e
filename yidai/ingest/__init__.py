"""Ingestion of the landing zone into the DuckDB warehouse, enforcing the data contracts.

Entry point: :func:`ingest_landing`.  See ``docs/data-contracts.md`` for the checks and
``docs/architecture.md`` for the warehouse tables it writes.
"""

from yidai.ingest.report import FileResult, IngestReport
from yidai.ingest.run import ingest_landing

__all__ = ["FileResult", "IngestReport", "ingest_landing"]
