"""Jobs say whether their workers must share one node (cluster mode: a gang may span nodes).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database written before versioned migrations by a later llmos may have it already.
    if "same_node" in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("jobs")}:
        return
    # Every job stored before cluster mode ran on one machine.
    op.add_column("jobs", sa.Column("same_node", sa.Boolean, nullable=False, server_default=sa.true()))


def downgrade() -> None:
    op.drop_column("jobs", "same_node")
