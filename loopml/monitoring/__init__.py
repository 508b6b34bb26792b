"""Monitoring: drift, data quality and performance of served models; alert rules; reports.

``drift_report`` compares current data with a reference column by column (KS / chi-squared
for small references, normalised Wasserstein / Jensen-Shannon for large ones, PSI on
request) from a :class:`ReferenceSummary` made once; ``quality_report`` finds null-rate
changes, out-of-range values, unseen categories and schema violations; ``performance_report``
scores labelled predictions by window and ``estimate_performance`` estimates accuracy and
ROC AUC from calibrated probabilities when labels have not arrived.

Monitors watch a deployment: ``create_monitor`` summarises the reference once (by default the
dataset its model was trained on, found by lineage); ``check_monitor`` compares a window of
logged predictions with it, stores a JSON + HTML report and updates alert rules
(``drift_share > 0.3``, ``accuracy < 0.8``, ``rows < 1``...) that notify by log, webhook or
callback while de-duplicating repeats. ``skew_report`` compares the feature values a
deployment looked up online with the offline values for the same keys and times.
"""

from loopml.monitoring._alerts import (
    ESTIMATED_METRICS,
    METRICS,
    PERFORMANCE_METRICS,
    Alert,
    Rule,
    RuleResult,
    list_alerts,
    parse_rule,
)
from loopml.monitoring._check import MonitorCheck, check_monitor
from loopml.monitoring._drift import ColumnDrift, DriftReport, drift_report
from loopml.monitoring._monitor import (
    Monitor,
    create_monitor,
    delete_monitor,
    get_monitor,
    list_monitors,
)
from loopml.monitoring._notify import (
    AlertEvent,
    CallbackNotifier,
    LogNotifier,
    Notifier,
    WebhookNotifier,
)
from loopml.monitoring._performance import (
    PerformanceReport,
    WindowPerformance,
    estimate_performance,
    performance_report,
)
from loopml.monitoring._quality import QualityIssue, QualityReport, quality_report
from loopml.monitoring._reports import MonitorReport, get_report, list_reports, report_html
from loopml.monitoring._skew import FeatureSkew, SkewReport, skew_report
from loopml.monitoring._summary import ColumnSummary, ReferenceSummary

__all__ = [
    "ESTIMATED_METRICS",
    "METRICS",
    "PERFORMANCE_METRICS",
    "Alert",
    "AlertEvent",
    "CallbackNotifier",
    "ColumnDrift",
    "ColumnSummary",
    "DriftReport",
    "FeatureSkew",
    "LogNotifier",
    "Monitor",
    "MonitorCheck",
    "MonitorReport",
    "Notifier",
    "PerformanceReport",
    "QualityIssue",
    "QualityReport",
    "ReferenceSummary",
    "Rule",
    "RuleResult",
    "SkewReport",
    "WebhookNotifier",
    "WindowPerformance",
    "check_monitor",
    "create_monitor",
    "delete_monitor",
    "drift_report",
    "estimate_performance",
    "get_monitor",
    "get_report",
    "list_alerts",
    "list_monitors",
    "list_reports",
    "parse_rule",
    "performance_report",
    "quality_report",
    "report_html",
    "skew_report",
]
