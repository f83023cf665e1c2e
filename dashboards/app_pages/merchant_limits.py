"""Merchant limits: lines, last refresh's changes, utilisation, exposure by grade."""

from dashboards.views.merchant_limits import render

render()
