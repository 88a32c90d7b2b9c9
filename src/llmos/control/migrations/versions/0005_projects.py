"""Users, projects and their members' roles.

Revision ID: 0005
Revises: 0004
"""

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # filled in by the change that brings this table


def downgrade() -> None:
    pass
