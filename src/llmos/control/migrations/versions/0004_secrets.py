"""Per-project secrets, encrypted at rest, and the extra folders a project's spec paths may use.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database written before versioned migrations by a later llmos may have them already.
    present = set(sa.inspect(op.get_bind()).get_table_names())
    if "secrets" not in present:
        _secrets()
    if "project_roots" not in present:
        _roots()


def _secrets() -> None:
    op.create_table("secrets",
                    sa.Column("project", sa.String(100), primary_key=True),
                    sa.Column("name", sa.String(128), primary_key=True),
                    sa.Column("value", sa.Text, nullable=False),  # a Fernet token; the key is not in the database
                    sa.Column("created_s", sa.Float, nullable=False),
                    sa.Column("updated_s", sa.Float, nullable=False),
                    sa.Column("updated_by", sa.String(100), nullable=False))


def _roots() -> None:
    op.create_table("project_roots",
                    sa.Column("project", sa.String(100), primary_key=True),
                    sa.Column("path", sa.String(1024), primary_key=True),
                    sa.Column("added_s", sa.Float, nullable=False),
                    sa.Column("added_by", sa.String(100), nullable=False))


def downgrade() -> None:
    op.drop_table("project_roots")
    op.drop_table("secrets")
