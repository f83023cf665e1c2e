"""The jobs layer: batch work that loads from the warehouse, the serving folder, MLflow or the
audit store, calls the domain packages' pure functions and publishes the result (the pipeline
steps behind the DAGs, the merchant limit refresh, monitoring, the dashboards' tables)."""
