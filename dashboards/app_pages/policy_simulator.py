"""Policy simulator: a candidate policy against the live one on historical applications."""

from dashboards.views.policy_simulator import render

render()
