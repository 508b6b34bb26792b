"""feature store: feature_definitions (versioned specs) and feature_watermarks

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feature_definitions",
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("kind", "name", "version", name=op.f("pk_feature_definitions")),
    )
    op.create_table(
        "feature_watermarks",
        sa.Column("view", sa.String(256), nullable=False),
        sa.Column("store", sa.String(512), nullable=False),
        sa.Column("view_version", sa.Integer, nullable=False),
        sa.Column("watermark", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("view", "store", name=op.f("pk_feature_watermarks")),
    )


def downgrade() -> None:
    op.drop_table("feature_watermarks")
    op.drop_table("feature_definitions")
