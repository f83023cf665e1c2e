"""Risk analytics behind the dashboards and notebooks: pure functions on published tables.

* :mod:`yidai.jobs.analytics.published`: versioned published tables with an atomic pointer.
* :mod:`yidai.jobs.analytics.publish`: ``publish_portfolio()`` (warehouse -> ``serving/portfolio``).
* :mod:`yidai.jobs.analytics.portfolio`, :mod:`yidai.jobs.analytics.fraud`: the page computations.
"""
