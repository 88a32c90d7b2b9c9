"""The schema of llmos 0.1.0, the last release before versioned migrations.

A database that release wrote has these tables and no `alembic_version`: `open_db` brings its
columns to this revision and stamps it, then upgrades it like any other.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY = ("transitions", "completions", "audit")


def tables() -> sa.MetaData:
    """The tables as 0.1.0 defined them (frozen here: later revisions change them, not this)."""
    m = sa.MetaData()
    sa.Table("jobs", m,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("name", sa.String(200), nullable=False), sa.Column("kind", sa.String(32), nullable=False),
             sa.Column("owner", sa.String(100), nullable=False), sa.Column("project", sa.String(100), nullable=False),
             sa.Column("priority", sa.Integer, nullable=False), sa.Column("state", sa.String(16), nullable=False),
             sa.Column("spec", sa.Text, nullable=False), sa.Column("workers", sa.Integer, nullable=False),
             sa.Column("cpus", sa.Float, nullable=False), sa.Column("memory_gb", sa.Float, nullable=False),
             sa.Column("gpus", sa.Integer, nullable=False), sa.Column("max_retries", sa.Integer, nullable=False),
             sa.Column("attempt", sa.Integer, nullable=False), sa.Column("failures", sa.Integer, nullable=False),
             sa.Column("submit_s", sa.Float, nullable=False), sa.Column("updated_s", sa.Float, nullable=False),
             sa.Column("not_before_s", sa.Float, nullable=False), sa.Column("placement", sa.Text),
             sa.Column("process", sa.Text), sa.Column("stop_s", sa.Float),
             sa.Column("holds", sa.Boolean, nullable=False), sa.Column("exit_code", sa.Integer),
             sa.Column("reason", sa.Text, nullable=False), sa.Column("run_dir", sa.Text),
             sa.Index("ix_jobs_state", "state"), sa.Index("ix_jobs_owner", "owner"))
    sa.Table("transitions", m,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), nullable=False, index=True),
             sa.Column("at_s", sa.Float, nullable=False), sa.Column("from_state", sa.String(16)),
             sa.Column("to_state", sa.String(16), nullable=False), sa.Column("attempt", sa.Integer, nullable=False),
             sa.Column("reason", sa.Text, nullable=False))
    sa.Table("attempts", m,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), nullable=False, index=True),
             sa.Column("number", sa.Integer, nullable=False), sa.Column("started_s", sa.Float, nullable=False),
             sa.Column("ended_s", sa.Float), sa.Column("exit_code", sa.Integer), sa.Column("outcome", sa.String(16)),
             sa.Column("pid", sa.Integer), sa.Column("placement", sa.Text),
             sa.UniqueConstraint("job_id", "number", name="uq_attempt"))
    sa.Table("completions", m,
             sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), primary_key=True),
             sa.Column("state", sa.String(16), nullable=False), sa.Column("at_s", sa.Float, nullable=False),
             sa.Column("exit_code", sa.Integer))
    sa.Table("tokens", m,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("name", sa.String(100), nullable=False), sa.Column("owner", sa.String(100), nullable=False),
             sa.Column("role", sa.String(16), nullable=False),
             sa.Column("digest", sa.String(64), nullable=False, unique=True),
             sa.Column("created_s", sa.Float, nullable=False), sa.Column("prefix", sa.String(16)),
             sa.Column("last_used_s", sa.Float), sa.Column("revoked_s", sa.Float))
    sa.Table("audit", m,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("at_s", sa.Float, nullable=False), sa.Column("actor", sa.String(100), nullable=False),
             sa.Column("role", sa.String(16), nullable=False), sa.Column("action", sa.String(64), nullable=False),
             sa.Column("target", sa.String(200), nullable=False), sa.Column("source", sa.String(100), nullable=False),
             sa.Column("outcome", sa.String(16), nullable=False), sa.Column("detail", sa.Text, nullable=False))
    sa.Table("deployments", m,
             sa.Column("name", sa.String(100), primary_key=True), sa.Column("owner", sa.String(100), nullable=False),
             sa.Column("model_ref", sa.String(300), nullable=False), sa.Column("spec", sa.Text, nullable=False),
             sa.Column("front_port", sa.Integer, nullable=False), sa.Column("state", sa.String(16), nullable=False),
             sa.Column("created_s", sa.Float, nullable=False), sa.Column("updated_s", sa.Float, nullable=False))
    return m


def upgrade() -> None:
    bind = op.get_bind()
    tables().create_all(bind)
    append_only(bind)


def append_only(bind: sa.Connection) -> None:
    """The history tables refuse UPDATE and DELETE (a trigger per table)."""
    for table in APPEND_ONLY:
        if bind.dialect.name == "sqlite":
            for verb in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")
        else:
            op.execute("CREATE OR REPLACE FUNCTION llmos_append_only() RETURNS trigger AS $$ BEGIN "
                       "RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END; $$ LANGUAGE plpgsql")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION llmos_append_only()")


def downgrade() -> None:
    raise NotImplementedError("the first revision has nothing below it")
