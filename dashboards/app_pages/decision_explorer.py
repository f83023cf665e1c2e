"""Decision explorer: a decision's inputs, scores, reasons, versions and the challenger's view."""

from dashboards.views.decision_explorer import render

render()
