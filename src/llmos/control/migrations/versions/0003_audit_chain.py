"""The audit log becomes a hash chain (each row carries the digest of the row before it).

Rows already there keep a NULL digest: the first row appended afterwards seals them (its
`prev_digest` is a keyed MAC over them, see `llmos.control._audit`). Adding columns fires no
trigger, so the append-only guard stays as it is.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("project", lambda: sa.Column("project", sa.String(100), nullable=False, server_default="")),
    ("status", lambda: sa.Column("status", sa.Integer)),
    ("prev_digest", lambda: sa.Column("prev_digest", sa.String(64))),
    ("digest", lambda: sa.Column("digest", sa.String(64))),
)


def upgrade() -> None:
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("audit")}
    for name, column in _COLUMNS:
        if name not in present:
            op.add_column("audit", column())


def downgrade() -> None:
    for name, _ in reversed(_COLUMNS):
        op.drop_column("audit", name)
