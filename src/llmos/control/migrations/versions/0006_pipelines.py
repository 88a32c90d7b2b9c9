"""Pipelines and sweeps: their stages and trials.

A pipeline is a row in `jobs` (kind pipeline, never queued); `pipeline_stages` holds each stage's
state, its job and the model it yielded. A sweep is such a row too (kind sweep); `sweeps` names its
Optuna study (Optuna creates its own tables in this database) and `sweep_trials` each trial's job.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database written before versioned migrations by a later llmos may have them already.
    present = set(sa.inspect(op.get_bind()).get_table_names())
    if "pipeline_stages" not in present:
        _pipeline_stages()
    if "sweeps" not in present:
        _sweeps()
    if "sweep_trials" not in present:
        _sweep_trials()


def _pipeline_stages() -> None:
    op.create_table("pipeline_stages",
                    sa.Column("pipeline_id", sa.Integer, sa.ForeignKey("jobs.id"), primary_key=True),
                    sa.Column("name", sa.String(100), primary_key=True),
                    sa.Column("position", sa.Integer, nullable=False),
                    sa.Column("action", sa.String(16), nullable=False),
                    sa.Column("needs", sa.Text, nullable=False),
                    sa.Column("state", sa.String(16), nullable=False),
                    sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id")),
                    sa.Column("model", sa.String(300)),
                    sa.Column("folder", sa.Text),
                    sa.Column("reason", sa.Text, nullable=False),
                    sa.Column("updated_s", sa.Float, nullable=False))


def _sweeps() -> None:
    op.create_table("sweeps",
                    sa.Column("sweep_id", sa.Integer, sa.ForeignKey("jobs.id"), primary_key=True),
                    sa.Column("study", sa.String(200), nullable=False),
                    sa.Column("folder", sa.Text, nullable=False),
                    sa.Column("ended_s", sa.Float),
                    sa.Column("result", sa.Text))


def _sweep_trials() -> None:
    op.create_table("sweep_trials",
                    sa.Column("sweep_id", sa.Integer, sa.ForeignKey("jobs.id"), primary_key=True),
                    sa.Column("number", sa.Integer, primary_key=True),
                    sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), nullable=False, unique=True),
                    sa.Column("pruned", sa.Boolean, nullable=False))


def downgrade() -> None:
    op.drop_table("sweep_trials")
    op.drop_table("sweeps")
    op.drop_table("pipeline_stages")
