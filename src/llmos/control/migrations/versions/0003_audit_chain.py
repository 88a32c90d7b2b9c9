"""The audit log becomes a hash chain (each row carries the digest of the row before it).

Revision ID: 0003
Revises: 0002
"""

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # filled in by the change that brings this table


def downgrade() -> None:
    pass
