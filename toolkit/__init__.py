"""streambench: stream one prompt to several LLMs, log every call, find the cost per success.

import toolkit as tk
with tk.sim.serve() as url:
    run = tk.run("demo", tk.sim.models(url))
run.df.tk.summary()
"""

from __future__ import annotations

from typing import Any

from . import datasets, scoring
from .api import Run, RunInterrupted, acompare, arun, load, runs
from .display import compare, last_run, run
from .errors import (
    ConfigError,
    DatasetError,
    MissingKeyError,
    ProviderError,
    ToolkitError,
    UserError,
)
from .models import Model
from .options import RunOptions
from .prompts import Prompt
from .record import CallRecord
from .rescore import arescore, rescore
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
    "Prompt",
    "ProviderError",
    "RetryPolicy",
    "Run",
    "RunInterrupted",
    "RunOptions",
    "Store",
    "Task",
    "ToolkitError",
    "UserError",
    "__version__",
    "acompare",
    "arescore",
    "arun",
    "cache",
    "compare",
    "datasets",
    "last_run",
    "load",
    "local",
    "plot",
    "rescore",
    "run",
    "runs",
    "scoring",
    "sim",
]


def __getattr__(name: str) -> Any:
    # The simulator pulls in starlette and uvicorn: import submodules only when asked for.
    if name in ("sim", "local", "plot", "cache"):
        import importlib

        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'toolkit' has no attribute {name!r}")


def _register_df_tk() -> None:
    """``df.tk`` on every DataFrame once toolkit and pandas are both imported, in either order,
    without ``import toolkit`` importing pandas (it is slow to import and not always needed)."""
    import importlib
    import importlib.abc
    import importlib.util
    import sys
    import warnings
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    def register() -> None:
        try:
            importlib.import_module(f"{__name__}.frame")  # its decorator registers df.tk
        except Exception as exc:  # never break the user's `import pandas` over df.tk
            warnings.warn(f"streambench: df.tk is not available: {exc}", stacklevel=2)

    if "pandas" in sys.modules:
        register()
        return

    class ThenRegister(importlib.abc.Loader):
        def __init__(self, loader: importlib.abc.Loader) -> None:
            self.loader = loader

        def create_module(self, spec: ModuleSpec) -> ModuleType | None:
            return self.loader.create_module(spec)

        def exec_module(self, module: ModuleType) -> None:
            # pandas keeps its own loader; this one only runs once pandas has run
            module.__loader__ = self.loader
            if module.__spec__ is not None:
                module.__spec__.loader = self.loader
            self.loader.exec_module(module)
            register()

    class AfterPandas(importlib.abc.MetaPathFinder):
        def find_spec(
            self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
        ) -> ModuleSpec | None:
            if fullname != "pandas":
                return None
            sys.meta_path.remove(self)  # one shot: the other finders find pandas itself
            spec = importlib.util.find_spec(fullname)
            if spec is not None and spec.loader is not None:
                spec.loader = ThenRegister(spec.loader)
            return spec

    sys.meta_path.insert(0, AfterPandas())


_register_df_tk()
