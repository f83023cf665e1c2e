"""Fraud: payment risk outcomes by tier, caught vs missed, risky terminals, cash-out suspects."""

from dashboards.views.fraud import render

render()
