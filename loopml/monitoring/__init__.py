"""Monitoring: drift, data quality and performance of served models; alert rules; reports.

``drift_report`` compares current data with a reference column by column (KS / chi-squared
for small references, normalised Wasserstein / Jensen-Shannon for large ones, PSI on
request) from a :class:`ReferenceSummary` made once; ``quality_report`` finds null-rate
changes, out-of-range values, unseen categories and schema violations; ``performance_report``
scores labelled predictions by window and ``estimate_performance`` estimates accuracy and
ROC AUC from calibrated probabilities when labels have not arrived.
"""

from loopml.monitoring._drift import ColumnDrift, DriftReport, drift_report
from loopml.monitoring._performance import (
    PerformanceReport,
    WindowPerformance,
    estimate_performance,
    performance_report,
)
from loopml.monitoring._quality import QualityIssue, QualityReport, quality_report
from loopml.monitoring._summary import ColumnSummary, ReferenceSummary

__all__ = [
    "ColumnDrift",
    "ColumnSummary",
    "DriftReport",
    "PerformanceReport",
    "QualityIssue",
    "QualityReport",
    "ReferenceSummary",
    "WindowPerformance",
    "drift_report",
    "estimate_performance",
    "performance_report",
    "quality_report",
]
