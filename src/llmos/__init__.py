"""llmos: an operating system for language models.

Fine-tune, compress, track, register, serve and schedule language models with one tool.

    import llmos
    result = llmos.train("job.yaml", train={"lr": 3e-5})
    llmos.compress(result.registered.ref, recipe=["int8"], eval="dev.csv")
    with llmos.serve(result.registered.ref) as server: ...
    with llmos.Client() as client: client.submit("job.yaml")
    llmos.export(result.registered.ref, format="onnx")

Importing this package is cheap: the names above load on first use (`llmos.api` holds them),
and torch, transformers and mlflow only when a function runs. See docs/python-api.md.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from llmos._noise import drop_known_noise

__version__ = "0.1.0"

drop_known_noise()

if TYPE_CHECKING:
    from llmos.api import Client, Deployment, Job, JobDetails, Registered, Server, TrainResult, export, train

# Loaded from llmos.api on first use (PEP 562), so that `import llmos` stays light.
_LAZY = ("Client", "Deployment", "Job", "JobDetails", "Registered", "Server", "TrainResult", "export", "train")
# `llmos.compress` and `llmos.serve` are also the packages of those stages; calling one runs the
# front-door function of that name (llmos.api.compress, llmos.api.serve).
_CALLABLE_PACKAGES = ("compress", "serve")

__all__ = ["Client", "Deployment", "Job", "JobDetails", "Registered", "Server", "TrainResult", "__version__",
           "compress", "export", "serve", "train"]


class _CallablePackage(ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from llmos import api

        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Llmos(ModuleType):
    # The import system binds a subpackage with setattr(llmos, name, module) whoever imports it
    # first; that is the one moment to make `llmos.compress(...)` callable without loading it here.
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _CALLABLE_PACKAGES and type(value) is ModuleType:
            value.__class__ = _CallablePackage
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Llmos


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from llmos import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    if name in _CALLABLE_PACKAGES:
        import importlib

        return importlib.import_module(f"llmos.{name}")
    raise AttributeError(f"module 'llmos' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
