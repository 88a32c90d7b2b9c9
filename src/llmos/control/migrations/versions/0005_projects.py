"""Users, projects and their members' roles.

Every token's owner becomes a user with a project of the same name, where it is a member with its
highest token role (so an existing developer token still submits where its jobs went before: the
project named after its owner). Every project a stored job counts against becomes a project too
(no members: an admin adds them). Deployments record their project (their owner's) and the class
their replicas wait for room at (None: critical, as before).

Revision ID: 0005
Revises: 0004
"""

import time

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_RANK = {"viewer": 0, "developer": 1, "admin": 2}


def upgrade() -> None:
    # A database written before versioned migrations by a later llmos may have them already.
    present = set(sa.inspect(op.get_bind()).get_table_names())
    if "users" not in present:
        _create_tables()
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("deployments")}
    if "project" not in columns:
        op.add_column("deployments", sa.Column("project", sa.String(100)))
    if "priority" not in columns:  # None: critical, the class every replica waited at before projects
        op.add_column("deployments", sa.Column("priority", sa.Integer))
    _backfill(op.get_bind())


def _create_tables() -> None:
    op.create_table("users",
                    sa.Column("name", sa.String(100), primary_key=True),
                    sa.Column("default_project", sa.String(100), nullable=False),
                    sa.Column("created_s", sa.Float, nullable=False))
    op.create_table("projects",
                    sa.Column("name", sa.String(100), primary_key=True),
                    sa.Column("created_s", sa.Float, nullable=False),
                    sa.Column("max_priority", sa.Integer, nullable=False),
                    sa.Column("weight", sa.Float, nullable=False),
                    *(sa.Column(f"{kind}_{res}", sa.Float) for kind in ("guarantee", "cap")
                      for res in ("cpus", "memory_gb", "gpus")))
    op.create_table("members",
                    sa.Column("project", sa.String(100), sa.ForeignKey("projects.name"), primary_key=True),
                    sa.Column("username", sa.String(100), sa.ForeignKey("users.name"), primary_key=True),
                    sa.Column("role", sa.String(16), nullable=False))


def _backfill(conn: sa.Connection) -> None:
    m = sa.MetaData()
    tokens = sa.Table("tokens", m, sa.Column("owner", sa.String), sa.Column("role", sa.String))
    jobs = sa.Table("jobs", m, sa.Column("project", sa.String))
    deployments = sa.Table("deployments", m, sa.Column("owner", sa.String), sa.Column("project", sa.String))
    users = sa.Table("users", m, sa.Column("name"), sa.Column("default_project"), sa.Column("created_s"))
    projects = sa.Table("projects", m, sa.Column("name"), sa.Column("created_s"), sa.Column("max_priority"),
                        sa.Column("weight"))
    members = sa.Table("members", m, sa.Column("project"), sa.Column("username"), sa.Column("role"))
    now = time.time()
    role_of: dict[str, str] = {}
    for owner, role in conn.execute(sa.select(tokens.c.owner, tokens.c.role)):
        if owner not in role_of or _RANK.get(role, 0) > _RANK.get(role_of[owner], 0):
            role_of[owner] = role
    names = set(role_of) | {p for (p,) in conn.execute(sa.select(jobs.c.project).distinct())}
    names -= {p for (p,) in conn.execute(sa.select(projects.c.name))}
    for name in sorted(names):
        conn.execute(sa.insert(projects).values(name=name, created_s=now, max_priority=1, weight=1.0))
    known = {u for (u,) in conn.execute(sa.select(users.c.name))}
    for owner, role in sorted(role_of.items()):
        if owner not in known:
            conn.execute(sa.insert(users).values(name=owner, default_project=owner, created_s=now))
            conn.execute(sa.insert(members).values(project=owner, username=owner, role=role))
    conn.execute(sa.update(deployments).where(deployments.c.project.is_(None)).values(project=deployments.c.owner))


def downgrade() -> None:
    op.drop_column("deployments", "priority")
    op.drop_column("deployments", "project")
    op.drop_table("members")
    op.drop_table("projects")
    op.drop_table("users")
