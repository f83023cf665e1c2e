"""Risk analytics behind the dashboards and notebooks: pure functions on published tables.

* :mod:`yidai.jobs.analytics.dashboard_tables`: publish and read the dashboards' tables.
* :mod:`yidai.jobs.analytics.portfolio_tables`: build them from the warehouse,
  ``publish_portfolio()`` (warehouse -> ``serving/portfolio``).
* :mod:`yidai.jobs.analytics.portfolio`, :mod:`yidai.jobs.analytics.fraud`: the page computations.
"""
