"""Versioned migrations of the control plane's state database (Alembic), run by `open_db`.

A change to `llmos.control._schema` comes with a revision in `versions/` that makes it (write one
with `alembic -c src/llmos/control/migrations/alembic.ini revision -m "..."`, then fill in
`upgrade`); tests/unit/control/test_control_migrations.py fails while the schema and the
migrations disagree.
"""
