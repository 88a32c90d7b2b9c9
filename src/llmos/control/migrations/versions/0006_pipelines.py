"""Pipelines and sweeps: their stages and trials.

Revision ID: 0006
Revises: 0005
"""

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # filled in by the change that brings this table


def downgrade() -> None:
    pass
