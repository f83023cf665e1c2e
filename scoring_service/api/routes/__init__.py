"""Thin routes over :mod:`scoring_service.decide` and :mod:`yidai.decisioning`."""
