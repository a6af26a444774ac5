"""Paper-style reports: tables, significance tests and figures from the runs tracked in MLflow."""

from benchmark.report.build import Report, build_report
from benchmark.report.data import ReportData

__all__ = ["Report", "ReportData", "build_report"]
