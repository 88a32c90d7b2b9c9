"""The control plane's tables (SQLAlchemy Core): one definition for SQLite and PostgreSQL.

Times are seconds since the epoch (floats) so that the scheduler snapshot needs no conversion.
`transitions`, `completions` and `audit` are only ever inserted into; `completions` has the job
id as its primary key, so a job cannot be recorded as finished twice.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = ["attempts", "audit", "completions", "deployments", "jobs", "members", "metadata", "project_roots",
           "projects", "secrets", "sweep_trials", "sweeps", "tokens", "transitions", "users"]

metadata = MetaData()

jobs = Table(
    "jobs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("owner", String(100), nullable=False),  # who submitted it (the token's owner)
    Column("project", String(100), nullable=False),  # whose fair share it counts against
    Column("priority", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("spec", Text, nullable=False),  # the validated job, as JSON
    Column("workers", Integer, nullable=False),
    Column("cpus", Float, nullable=False),  # per worker
    Column("memory_gb", Float, nullable=False),  # per worker
    Column("gpus", Integer, nullable=False),  # per worker
    Column("same_node", Boolean, nullable=False, default=True),  # False: the gang may span nodes (Ray)
    Column("max_retries", Integer, nullable=False),
    Column("attempt", Integer, nullable=False, default=0),  # attempts started
    Column("failures", Integer, nullable=False, default=0),  # attempts failed (counted against max_retries)
    Column("submit_s", Float, nullable=False),  # place in the queue; kept when requeued
    Column("updated_s", Float, nullable=False),
    Column("not_before_s", Float, nullable=False, default=0.0),  # retry backoff
    Column("placement", Text),  # JSON: cores and GPU indices per worker
    Column("process", Text),  # JSON: {"pid", "create_time"} of the attempt's supervisor
    Column("stop_s", Float),  # when SIGTERM was sent (the grace period runs from here)
    Column("holds", Boolean, nullable=False, default=False),  # its processes may hold the placement
    Column("exit_code", Integer),
    Column("reason", Text, nullable=False, default=""),
    Column("run_dir", Text),
    Index("ix_jobs_state", "state"),
    Index("ix_jobs_owner", "owner"),
)

transitions = Table(
    "transitions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False, index=True),
    Column("at_s", Float, nullable=False),
    Column("from_state", String(16)),
    Column("to_state", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("reason", Text, nullable=False),
)

attempts = Table(
    "attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False, index=True),
    Column("number", Integer, nullable=False),
    Column("started_s", Float, nullable=False),
    Column("ended_s", Float),
    Column("exit_code", Integer),
    Column("outcome", String(16)),
    Column("pid", Integer),
    Column("placement", Text),
    UniqueConstraint("job_id", "number", name="uq_attempt"),
)

completions = Table(
    "completions", metadata,
    Column("job_id", Integer, ForeignKey("jobs.id"), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("at_s", Float, nullable=False),
    Column("exit_code", Integer),
)

tokens = Table(
    "tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("owner", String(100), nullable=False),
    Column("role", String(16), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),  # sha256 of the token; never the token
    Column("created_s", Float, nullable=False),
    # Added later, so nullable: `_db` adds them to an older database.
    Column("prefix", String(16)),  # the token's first characters, so its holder can tell which one it is
    Column("last_used_s", Float),  # refreshed at most once a minute per token
    Column("revoked_s", Float),  # set once; a revoked token is kept (and refused) so it cannot come back
)

audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at_s", Float, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(200), nullable=False),
    Column("source", String(100), nullable=False),  # the client's address
    Column("outcome", String(16), nullable=False),  # ok, or the error status
    Column("detail", Text, nullable=False, default=""),
    # Added by migration 0003 (the hash chain, `_audit`): NULL digests only on rows from before it.
    Column("project", String(100), nullable=False, server_default=""),
    Column("status", Integer),  # the HTTP status the call was answered with
    Column("prev_digest", String(64)),
    Column("digest", String(64)),  # HMAC-SHA256 of prev_digest and this row's fields
)

deployments = Table(
    "deployments", metadata,
    Column("name", String(100), primary_key=True),
    Column("owner", String(100), nullable=False),
    Column("model_ref", String(300), nullable=False),
    Column("spec", Text, nullable=False),
    Column("front_port", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # ACTIVE, STOPPING (replicas draining), STOPPED
    Column("created_s", Float, nullable=False),
    Column("updated_s", Float, nullable=False),
    Column("project", String(100)),  # whose quota its replicas count against (None: written before projects)
    Column("priority", Integer),  # the class its replicas wait for room at (None: critical, as before projects)
)

# Users, projects and members (migration 0005). A token's `owner` is a user; a job's and a
# deployment's `project` is a project; quotas and priority grants are the project's.
users = Table(
    "users", metadata,
    Column("name", String(100), primary_key=True),
    Column("default_project", String(100), nullable=False),  # where jobs go without --project
    Column("created_s", Float, nullable=False),
)

projects = Table(
    "projects", metadata,
    Column("name", String(100), primary_key=True),
    Column("created_s", Float, nullable=False),
    Column("max_priority", Integer, nullable=False, default=1),  # highest class granted (1: normal)
    Column("weight", Float, nullable=False, default=1.0),  # fair-share weight
    # Per-resource guarantee and hard cap for the scheduler's `Owner` (None: not set).
    Column("guarantee_cpus", Float), Column("guarantee_memory_gb", Float), Column("guarantee_gpus", Float),
    Column("cap_cpus", Float), Column("cap_memory_gb", Float), Column("cap_gpus", Float),
)

members = Table(
    "members", metadata,
    Column("project", String(100), ForeignKey("projects.name"), primary_key=True),
    Column("username", String(100), ForeignKey("users.name"), primary_key=True),
    Column("role", String(16), nullable=False),  # viewer, developer or admin in this project
)

# Secrets and path roots per project (migration 0004). A secret's value is a Fernet token (the key is
# LLMOS_HOME/control/secrets.key, never in the database); a root is a folder whose spec paths a
# project's jobs may use beside the defaults (llmos.control._confine).
secrets = Table(
    "secrets", metadata,
    Column("project", String(100), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("value", Text, nullable=False),  # encrypted
    Column("created_s", Float, nullable=False),
    Column("updated_s", Float, nullable=False),
    Column("updated_by", String(100), nullable=False),
)

project_roots = Table(
    "project_roots", metadata,
    Column("project", String(100), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("added_s", Float, nullable=False),
    Column("added_by", String(100), nullable=False),
)

# The stages of a `kind: pipeline` job (its own row in `jobs`, which never queues): each stage's state,
# the job that runs it and the model it yielded, so that a restarted daemon resumes where it was.
pipeline_stages = Table(
    "pipeline_stages", metadata,
    Column("pipeline_id", Integer, ForeignKey("jobs.id"), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("position", Integer, nullable=False),  # order in the spec
    Column("action", String(16), nullable=False),  # train, compress, evaluate, promote, deploy
    Column("needs", Text, nullable=False),  # JSON list of the stage names it waits for
    Column("state", String(16), nullable=False),  # PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED
    Column("job_id", Integer, ForeignKey("jobs.id")),  # the stage's job once submitted (deploy: none)
    Column("model", String(300)),  # the registry reference it yielded, NAME/VERSION
    Column("folder", Text),  # where its job writes what it yielded
    Column("reason", Text, nullable=False, default=""),
    Column("updated_s", Float, nullable=False),
    Column("started_s", Float),  # when its job was created or its deployment asked for (migration 0007)
)

# A `kind: sweep` job (its own row in `jobs`, which never queues): its Optuna study (whose tables Optuna
# keeps in this same database) and, once it ended, what it found; and each trial's job.
sweeps = Table(
    "sweeps", metadata,
    Column("sweep_id", Integer, ForeignKey("jobs.id"), primary_key=True),
    Column("study", String(200), nullable=False),  # the Optuna study's name
    Column("folder", Text, nullable=False),  # trial run folders t0, t1, ...
    Column("ended_s", Float),  # set once the driver has finished it (registered, parent run closed)
    Column("result", Text),  # JSON: best trial, registered version, trials per state
)
sweep_trials = Table(
    "sweep_trials", metadata,
    Column("sweep_id", Integer, ForeignKey("jobs.id"), primary_key=True),
    Column("number", Integer, primary_key=True),  # Optuna's trial number
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False, unique=True),
    Column("pruned", Boolean, nullable=False, default=False),  # stopped by the pruner (its job CANCELLED)
)
