"""Per-project secrets, encrypted at rest.

Revision ID: 0004
Revises: 0003
"""

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # filled in by the change that brings this table


def downgrade() -> None:
    pass
