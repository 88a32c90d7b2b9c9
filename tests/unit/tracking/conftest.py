"""Real MLflow stores, one per test module (see tests/unit/_mlflow_store.py)."""

from tests.unit._mlflow_store import llmos_home, make_model_dir, shared_home

__all__ = ["llmos_home", "make_model_dir", "shared_home"]
