"""streambench: stream one prompt to several LLMs, log every call, find the cost per success.

import toolkit as tk
with tk.sim.serve() as url:
    run = tk.run("demo", tk.sim.models(url))
run.df.tk.summary()
"""

from __future__ import annotations

from typing import Any

from . import datasets, scoring
from .api import Run, acompare, arun, load, runs
from .display import compare, run
from .errors import (
    ConfigError,
    DatasetError,
    MissingKeyError,
    ProviderError,
    ToolkitError,
    UserError,
)
from .models import Model
from .record import CallRecord
from .runner import RetryPolicy
from .store import Store
from .tasks import Task

__version__ = "0.1.0"

__all__ = [
    "CallRecord",
    "ConfigError",
    "DatasetError",
    "MissingKeyError",
    "Model",
    "ProviderError",
    "RetryPolicy",
    "Run",
    "Store",
    "Task",
    "ToolkitError",
    "UserError",
    "__version__",
    "acompare",
    "arun",
    "compare",
    "datasets",
    "load",
    "local",
    "plot",
    "run",
    "runs",
    "scoring",
    "sim",
]


def __getattr__(name: str) -> Any:
    # The simulator pulls in starlette and uvicorn: import submodules only when asked for.
    if name in ("sim", "local", "plot"):
        import importlib

        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
