"""Risk analytics behind the dashboards and notebooks: pure functions on published tables.

* :mod:`yidai.analytics.published`: versioned published tables with an atomic pointer.
* :mod:`yidai.analytics.publish`: ``publish_portfolio()`` (warehouse -> ``serving/portfolio``).
* :mod:`yidai.analytics.portfolio`, :mod:`yidai.analytics.fraud`: the page computations.
"""
