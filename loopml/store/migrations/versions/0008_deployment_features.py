"""deployments.features: the feature service a deployment looks up for each request

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("features", sa.String(256)))


def downgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("features")
