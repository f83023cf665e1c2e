"""Overview: the landing page at ``/`` with a link to every page (each has its own URL)."""

from dashboards.views.overview import render

render()
