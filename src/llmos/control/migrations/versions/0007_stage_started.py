"""A pipeline stage remembers when it started: a deploy stage waits for its deployment's replicas to
be ready up to its `ready_timeout_s` from then, across daemon restarts.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("pipeline_stages")}
    if "started_s" not in present:
        op.add_column("pipeline_stages", sa.Column("started_s", sa.Float))


def downgrade() -> None:
    op.drop_column("pipeline_stages", "started_s")
