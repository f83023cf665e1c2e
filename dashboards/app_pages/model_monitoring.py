"""Model monitoring: AUC/KS on matured cohorts, PSI, calibration, champion vs challenger."""

from dashboards.views.model_monitoring import render

render()
