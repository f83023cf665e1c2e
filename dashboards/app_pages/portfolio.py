"""Portfolio: applications, approvals, exposure, vintages, lines and drawdown spikes."""

from dashboards.views.portfolio import render

render()
