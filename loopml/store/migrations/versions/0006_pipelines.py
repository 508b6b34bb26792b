"""pipelines: pipeline runs, step runs, schedules and their claimed slots

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("pipeline", sa.String(256), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("executor", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("schedule", sa.String(256), nullable=True),
        sa.Column("slot", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("ended_at", sa.BigInteger, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_runs")),
    )
    op.create_index(op.f("ix_pipeline_runs_pipeline"), "pipeline_runs", ["pipeline"])
    op.create_table(
        "step_runs",
        sa.Column("pipeline_run_id", sa.String(32), nullable=False),
        sa.Column("node", sa.String(256), nullable=False),
        sa.Column("step", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cache_key", sa.String(64), nullable=True),
        sa.Column("cache_hit", sa.Boolean, server_default=sa.false(), nullable=False),
        sa.Column("attempts", sa.Integer, server_default="0", nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("output_kind", sa.String(16), nullable=True),
        sa.Column("output_digest", sa.String(64), nullable=True),
        sa.Column("started_at", sa.BigInteger, nullable=True),
        sa.Column("ended_at", sa.BigInteger, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.ForeignKeyConstraint(
            ["pipeline_run_id"],
            ["pipeline_runs.id"],
            name=op.f("fk_step_runs_pipeline_run_id_pipeline_runs"),
        ),
        sa.PrimaryKeyConstraint("pipeline_run_id", "node", name=op.f("pk_step_runs")),
    )
    op.create_index(op.f("ix_step_runs_cache_key"), "step_runs", ["cache_key"])
    op.create_table(
        "pipeline_schedules",
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("cron", sa.String(128), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("executor", sa.String(32), nullable=False),
        sa.Column("enabled", sa.Boolean, server_default=sa.true(), nullable=False),
        sa.Column("start_at", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_pipeline_schedules")),
    )
    op.create_table(
        "schedule_slots",
        sa.Column("schedule", sa.String(256), nullable=False),
        sa.Column("slot", sa.BigInteger, nullable=False),
        sa.Column("claimed_by", sa.String(256), nullable=False),
        sa.Column("claimed_at", sa.BigInteger, nullable=False),
        sa.Column("pipeline_run_id", sa.String(32), nullable=True),
        sa.ForeignKeyConstraint(
            ["schedule"],
            ["pipeline_schedules.name"],
            name=op.f("fk_schedule_slots_schedule_pipeline_schedules"),
        ),
        sa.PrimaryKeyConstraint("schedule", "slot", name=op.f("pk_schedule_slots")),
    )


def downgrade() -> None:
    op.drop_table("schedule_slots")
    op.drop_table("pipeline_schedules")
    op.drop_index(op.f("ix_step_runs_cache_key"), table_name="step_runs")
    op.drop_table("step_runs")
    op.drop_index(op.f("ix_pipeline_runs_pipeline"), table_name="pipeline_runs")
    op.drop_table("pipeline_runs")
