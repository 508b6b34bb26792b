"""Validating dataset versions: run a suite, store the report, apply the failure policy.

``raise`` stops the pipeline with every failure listed; ``warn`` logs and goes on;
``quarantine`` splits the version into a clean version of the same dataset and a version
of ``<name>-quarantine`` holding the failing rows (with their original row numbers), both
derived from the validated version in the lineage. Reports are stored as JSON and as a
self-contained HTML page in the blob store, linked to the version they checked.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from loopml.data._datasets import DatasetVersion, resolve, store_version
from loopml.data._report_html import ValidationReport
from loopml.data._suite import Suite
from loopml.data._validation import validate_table
from loopml.errors import InvalidInput, NotFound, ValidationFailed
from loopml.store import Node, Workspace, add_edge, default_workspace, now_ms
from loopml.store.schema import validation_reports

log = logging.getLogger(__name__)
Policy = Literal["raise", "warn", "quarantine"]
ROW_COLUMN = "source_row"


@dataclass(frozen=True)
class Validation:
    """The outcome of :func:`validate`: the report, where it is stored, and the split."""

    dataset: DatasetVersion
    report: ValidationReport
    report_id: int
    clean: DatasetVersion | None = None
    quarantined: DatasetVersion | None = None

    @property
    def passed(self) -> bool:
        """Whether no error-severity check failed."""
        return bool(self.report.passed)


def load_suite(suite: Suite | str | Path | dict[str, Any]) -> Suite:
    """A Suite from a Suite, a YAML file path or YAML text, or a dict."""
    if isinstance(suite, Suite):
        return suite
    if isinstance(suite, dict):
        return Suite.from_dict(suite)
    if isinstance(suite, str | Path):
        return Suite.from_yaml(suite)
    raise InvalidInput(f"suite must be a Suite, a YAML path or text, or a dict; got {suite!r}")


def validate(
    dataset: DatasetVersion | str,
    suite: Suite | str | Path | dict[str, Any],
    *,
    on_fail: Policy = "raise",
    reference: DatasetVersion | str | None = None,
    workspace: Workspace | None = None,
) -> Validation:
    """Validate a dataset version against ``suite`` and store the report.

    Parameters
    ----------
    dataset : the version to check (``"churn@3"`` or a DatasetVersion).
    suite : a Suite, a YAML file or text, or a dict in the same format.
    on_fail : ``"raise"`` (InvalidInput listing every failure), ``"warn"`` or
        ``"quarantine"`` (see the module docstring).
    reference : the version statistical checks compare with (its stored profile).

    Examples
    --------
    >>> result = validate("churn@3", "suites/churn.yaml", on_fail="quarantine")  # doctest: +SKIP
    >>> result.clean.ref, result.quarantined.ref                                   # doctest: +SKIP
    ('churn@4', 'churn-quarantine@1')
    """
    if on_fail not in ("raise", "warn", "quarantine"):
        raise InvalidInput(f"on_fail must be 'raise', 'warn' or 'quarantine', got {on_fail!r}")
    ws = workspace or default_workspace()
    dv = resolve(dataset, workspace=ws)
    checks = load_suite(suite)
    ref_profile = resolve(reference, workspace=ws).profile if reference is not None else None
    table = dv.to_arrow()
    report = validate_table(table, checks, reference_profile=ref_profile)
    report_id = _save(ws, dv, report)
    result = Validation(dv, report, report_id)
    if report.passed:
        return result
    if on_fail == "raise":
        raise ValidationFailed(
            f"{dv.ref} failed validation (report {report_id}):\n{report.summary()}", result
        )
    if on_fail == "warn":
        log.warning("%s failed validation (report %s):\n%s", dv.ref, report_id, report.summary())
        return result
    return _quarantine(ws, result, table)


def _save(ws: Workspace, dv: DatasetVersion, report: ValidationReport) -> int:
    report_digest = ws.blobs.put_bytes(report.to_json().encode("utf-8"))
    html_digest = ws.blobs.put_bytes(
        report.to_html(f"Validation of {dv.ref}: {report.suite}").encode("utf-8")
    )
    failed = sum(1 for r in report.results if not r.passed)
    with ws.db.write() as conn:
        report_id = int(
            conn.execute(
                validation_reports.insert()
                .values(
                    dataset=dv.name,
                    version=dv.version,
                    suite=report.suite,
                    passed=report.passed,
                    failed_checks=failed,
                    report_digest=report_digest,
                    html_digest=html_digest,
                    created_at=now_ms(),
                )
                .returning(validation_reports.c.id)
            ).scalar_one()
        )
        add_edge(
            ws.db, conn, dv.lineage_node, Node("validation_report", str(report_id)), "validated"
        )
    return report_id


def _quarantine(ws: Workspace, result: Validation, table: pa.Table) -> Validation:
    failing = np.asarray(result.report.failing_rows("error"), dtype=np.int64)
    if failing.size == 0:  # only dataset-level checks failed: nothing to split off
        log.warning(
            "%s failed dataset-level checks; no rows to quarantine:\n%s",
            result.dataset.ref,
            result.report.summary(),
        )
        return result
    keep = np.ones(table.num_rows, dtype=bool)
    keep[failing] = False
    rows = pa.array(np.arange(table.num_rows, dtype=np.int64))
    bad = table.filter(pa.array(~keep)).append_column(ROW_COLUMN, rows.filter(pa.array(~keep)))
    source = {"type": "quarantine", "validated": result.dataset.ref, "report_id": result.report_id}
    clean = store_version(
        ws,
        result.dataset.name,
        table.filter(pa.array(keep)),
        {**source, "part": "clean"},
        [],
        [result.dataset],
    )
    quarantined = store_version(
        ws,
        f"{result.dataset.name}-quarantine",
        bad,
        {**source, "part": "failing rows"},
        [],
        [result.dataset],
    )
    log.warning(
        "%s: %d failing row(s) quarantined to %s; clean rows in %s",
        result.dataset.ref,
        failing.size,
        quarantined.ref,
        clean.ref,
    )
    return Validation(result.dataset, result.report, result.report_id, clean, quarantined)


def get_report(
    report_id: int, *, html: bool = False, workspace: Workspace | None = None
) -> dict[str, Any] | str:
    """A stored report: its dict (default) or its HTML page."""
    ws = workspace or default_workspace()
    with ws.db.read() as conn:
        row = conn.execute(
            sa.select(validation_reports).where(validation_reports.c.id == report_id)
        ).first()
    if row is None:
        raise NotFound(f"no validation report {report_id}")
    if html:
        return ws.blobs.get_bytes(row.html_digest).decode("utf-8")
    loaded: dict[str, Any] = json.loads(ws.blobs.get_bytes(row.report_digest))
    return loaded
