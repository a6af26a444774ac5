"""Paper-style reports: tables, significance tests and figures from the runs tracked in MLflow."""

from benchmark.report.build import build_report

__all__ = ["build_report"]
