"""The metadata schema: every table loopml keeps in its database, in one place.

Times are integer milliseconds since the epoch (UTC). Metric history is stored in
append-only chunks: each flush of a run's buffered points for one key becomes one row
holding packed little-endian arrays of steps (int64), values (float64) and timestamps
(int64). Reading a 100,000-point history is then a few hundred rows, not 100,000.

Experiments, models and datasets each belong to a ``project``: the namespace that the
platform server's per-user roles (``project_roles``) apply to.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

NAME = sa.String(256)
KEY = sa.String(250)
RUN_ID = sa.String(32)
DEFAULT_PROJECT = "default"  # the namespace of experiments, models and datasets

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", NAME, nullable=False, unique=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("project", NAME, nullable=False, server_default=DEFAULT_PROJECT, index=True),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", RUN_ID, primary_key=True),
    sa.Column("experiment_id", sa.ForeignKey("experiments.id"), nullable=False, index=True),
    sa.Column("name", NAME, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("start_time", sa.BigInteger, nullable=False),
    sa.Column("end_time", sa.BigInteger),
    sa.Column("parent_id", sa.ForeignKey("runs.id"), index=True),
    sa.Column("source_commit", sa.String(64)),
    sa.Column("source_entry_point", sa.Text),
    sa.Column("error", sa.Text),
)

run_tags = sa.Table(
    "run_tags",
    metadata,
    sa.Column("run_id", sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sqlite_with_rowid=False,
)

params = sa.Table(
    "params",
    metadata,
    sa.Column("run_id", sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sqlite_with_rowid=False,
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("run_id", sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("key", KEY, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("steps", sa.LargeBinary, nullable=False),
    sa.Column("values", sa.LargeBinary, nullable=False),
    sa.Column("timestamps", sa.LargeBinary, nullable=False),
    sa.Index(None, "run_id", "key"),
)

latest_metrics = sa.Table(
    "latest_metrics",
    metadata,
    sa.Column("run_id", sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("value", sa.Double),  # NULL stands for NaN (SQLite cannot store NaN)
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Index(None, "key", "value"),
    sqlite_with_rowid=False,
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("run_id", sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("project", NAME, nullable=False, server_default=DEFAULT_PROJECT, index=True),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("model", sa.ForeignKey("models.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("flavor", sa.String(64), nullable=False),
    sa.Column("package_digest", sa.String(64), nullable=False),
    sa.Column("signature", sa.JSON, nullable=False),
    sa.Column("run_id", sa.ForeignKey("runs.id"), index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

model_tags = sa.Table(
    "model_tags",
    metadata,
    sa.Column("model", sa.ForeignKey("models.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),  # 0: a tag of the model itself
    sa.Column("key", KEY, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("model", NAME, primary_key=True),
    sa.Column("alias", NAME, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.ForeignKeyConstraint(
        ["model", "version"], ["model_versions.model", "model_versions.version"]
    ),
)

lineage = sa.Table(
    "lineage",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("src_kind", sa.String(32), nullable=False),
    sa.Column("src_id", sa.String(512), nullable=False),
    sa.Column("dst_kind", sa.String(32), nullable=False),
    sa.Column("dst_id", sa.String(512), nullable=False),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("src_kind", "src_id", "dst_kind", "dst_id", "role"),
    sa.Index(None, "dst_kind", "dst_id"),
)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("project", NAME, nullable=False, server_default=DEFAULT_PROJECT, index=True),
)

dataset_versions = sa.Table(
    "dataset_versions",
    metadata,
    sa.Column("name", sa.ForeignKey("datasets.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),  # the Parquet blob
    sa.Column("num_rows", sa.BigInteger, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("schema", sa.JSON, nullable=False),
    sa.Column("profile", sa.JSON, nullable=False),
    sa.Column("source", sa.JSON, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("name", "content_hash"),
)

dataset_aliases = sa.Table(
    "dataset_aliases",
    metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("alias", NAME, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.ForeignKeyConstraint(
        ["name", "version"], ["dataset_versions.name", "dataset_versions.version"]
    ),
)

validation_reports = sa.Table(
    "validation_reports",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("dataset", NAME, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("suite", NAME, nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("failed_checks", sa.Integer, nullable=False),
    sa.Column("report_digest", sa.String(64), nullable=False),  # JSON blob
    sa.Column("html_digest", sa.String(64), nullable=False),  # self-contained HTML blob
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.ForeignKeyConstraint(
        ["dataset", "version"], ["dataset_versions.name", "dataset_versions.version"]
    ),
    sa.Index(None, "dataset", "version"),
)

# Serving: a deployment is an endpoint name bound to a primary model version reference
# (``@production`` or ``3``) and a traffic policy towards an optional candidate.
deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("model", NAME, nullable=False),
    sa.Column("primary_ref", sa.String(64), nullable=False),
    sa.Column("policy", sa.String(16), nullable=False),  # single | shadow | canary | ab
    sa.Column("candidate_ref", sa.String(64)),
    sa.Column("traffic", sa.Double),  # share of requests sent to the candidate (canary, ab)
    sa.Column("sticky_key", NAME),  # request field hashed for sticky A/B assignment
    sa.Column("features", NAME),  # feature service looked up for each request (or null)
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

# Prediction logs and feedback labels are Parquet blobs, one per flush, indexed here by
# deployment and hour so a time window is read without listing the blob store.
log_partitions = sa.Table(
    "log_partitions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("deployment", NAME, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # predictions | feedback
    sa.Column("hour", sa.BigInteger, nullable=False),  # start of the hour, ms since epoch
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("num_rows", sa.Integer, nullable=False),
    sa.Column("min_ts", sa.BigInteger, nullable=False),
    sa.Column("max_ts", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index(None, "deployment", "kind", "hour"),
)

# Monitoring: a monitor watches a deployment against a summarised reference.
monitors = sa.Table(
    "monitors",
    metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("deployment", NAME, nullable=False),
    sa.Column("reference", sa.JSON, nullable=False),  # where the reference came from
    sa.Column("summary_digest", sa.String(64), nullable=False),  # reference sketch blob
    sa.Column("config", sa.JSON, nullable=False),  # window, thresholds, alert rules
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

monitor_reports = sa.Table(
    "monitor_reports",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("monitor", sa.ForeignKey("monitors.name"), nullable=False),
    sa.Column("window_start", sa.BigInteger),
    sa.Column("window_end", sa.BigInteger),
    sa.Column("num_rows", sa.BigInteger, nullable=False),
    sa.Column("drift_share", sa.Double),
    sa.Column("summary", sa.JSON, nullable=False),  # headline figures for listing and alerts
    sa.Column("report_digest", sa.String(64), nullable=False),  # JSON blob
    sa.Column("html_digest", sa.String(64), nullable=False),  # self-contained HTML blob
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index(None, "monitor", "created_at"),
)

# Alerts: one row per firing episode of a rule; a rule has at most one open (firing) row.
alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("source", NAME, nullable=False),  # the monitor (or deployment) it watches
    sa.Column("rule", sa.String(512), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # firing | resolved
    sa.Column("value", sa.Double),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("fired_at", sa.BigInteger, nullable=False),
    sa.Column("resolved_at", sa.BigInteger),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Index(None, "source", "rule", "state"),
)

# The loop: every retrain/compare/promote decision with its evidence.
loop_decisions = sa.Table(
    "loop_decisions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("deployment", NAME, nullable=False),
    sa.Column("model", NAME, nullable=False),
    sa.Column("champion", sa.Integer),
    sa.Column("challenger", sa.Integer),
    sa.Column("trigger", sa.String(64), nullable=False),  # alert | schedule | manual
    sa.Column("decision", sa.String(16), nullable=False),  # promoted | rejected | skipped
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index(None, "deployment", "created_at"),
)

# The platform server: users, their API tokens (only a sha256 of each token is kept),
# their role per project, and an audit log of every write request.
users = sa.Table(
    "users",
    metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("hash", sa.String(64), primary_key=True),  # sha256 hex of the token
    sa.Column("user_name", sa.ForeignKey("users.name"), nullable=False, index=True),
    sa.Column("label", NAME, nullable=False, server_default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("last_used_at", sa.BigInteger),
    sa.Column("expires_at", sa.BigInteger),
)

project_roles = sa.Table(
    "project_roles",
    metadata,
    sa.Column("user_name", sa.ForeignKey("users.name"), primary_key=True),
    sa.Column("project", NAME, primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),  # viewer | editor | admin
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.CheckConstraint("role IN ('viewer', 'editor', 'admin')", name="ck_project_roles_role"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("time", sa.BigInteger, nullable=False),
    sa.Column("user_name", NAME),  # NULL: the request carried no valid credential
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("path", sa.String(2048), nullable=False),
    sa.Column("action", sa.Text),  # what a handler says it did, e.g. "alias churn@production"
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("remote_addr", sa.String(64)),
    sa.Index(None, "time"),
    sa.Index(None, "user_name", "time"),
)

applied_batches = sa.Table(  # a remote client's batch ids: a retried batch is applied once
    "applied_batches",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("applied_at", sa.BigInteger, nullable=False),
)

# Pipelines: one row per pipeline run and one per step of it (its cache key and where its
# output blob is), cron schedules, and the slots they claimed: the (schedule, slot) key
# makes a slot run exactly once however many schedulers race for it.
pipeline_runs = sa.Table(
    "pipeline_runs",
    metadata,
    sa.Column("id", RUN_ID, primary_key=True),
    sa.Column("pipeline", NAME, nullable=False, index=True),
    sa.Column("source", sa.Text, nullable=False),  # module:qualname or file.py:qualname
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # RUNNING | FINISHED | FAILED
    sa.Column("executor", sa.String(32), nullable=False),
    sa.Column("run_id", RUN_ID),  # the tracking run that is the parent of the step runs
    sa.Column("schedule", NAME),
    sa.Column("slot", sa.BigInteger),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("ended_at", sa.BigInteger),
    sa.Column("error", sa.Text),
)

step_runs = sa.Table(
    "step_runs",
    metadata,
    sa.Column("pipeline_run_id", sa.ForeignKey("pipeline_runs.id"), primary_key=True),
    sa.Column("node", NAME, primary_key=True),  # the call's name in the DAG, e.g. square-2
    sa.Column("step", NAME, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # PENDING|RUNNING|FINISHED|FAILED|SKIPPED
    sa.Column("cache_key", sa.String(64)),
    sa.Column("cache_hit", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("run_id", RUN_ID),  # the step's tracking run
    sa.Column("output_kind", sa.String(16)),  # parquet | json | pickle | ref
    sa.Column("output_digest", sa.String(64)),
    sa.Column("started_at", sa.BigInteger),
    sa.Column("ended_at", sa.BigInteger),
    sa.Column("error", sa.Text),
    sa.Index(None, "cache_key"),
)

pipeline_schedules = sa.Table(
    "pipeline_schedules",
    metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("cron", sa.String(128), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("executor", sa.String(32), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("start_at", sa.BigInteger, nullable=False),  # the first slot is after this
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

schedule_slots = sa.Table(
    "schedule_slots",
    metadata,
    sa.Column("schedule", sa.ForeignKey("pipeline_schedules.name"), primary_key=True),
    sa.Column("slot", sa.BigInteger, primary_key=True),  # the slot's time, ms since epoch
    sa.Column("claimed_by", NAME, nullable=False),
    sa.Column("claimed_at", sa.BigInteger, nullable=False),
    sa.Column("pipeline_run_id", RUN_ID),
)

# The feature store: every version of every definition (entity, feature view, on-demand
# view, feature service) as a JSON spec, and per online store how far each view has been
# materialized (its watermark: the newest source timestamp written, ms since epoch).
feature_definitions = sa.Table(
    "feature_definitions",
    metadata,
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("name", NAME, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("spec_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

feature_watermarks = sa.Table(
    "feature_watermarks",
    metadata,
    sa.Column("view", NAME, primary_key=True),
    sa.Column("store", sa.String(512), primary_key=True),  # the online store's identity
    sa.Column("view_version", sa.Integer, nullable=False),
    sa.Column("watermark", sa.BigInteger, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
