"""The one place that touches the generated bindings (`wit_world`, made by
componentize-py for the agent's world at build time). Imported lazily, so
the SDK and an agent's logic import under a plain Python too."""
from __future__ import annotations

import importlib


def call(interface: str, function: str, *args):
    """Calls `function` of the imported WIT interface `interface`."""
    module = importlib.import_module(f"wit_world.imports.{interface}")
    return getattr(module, function)(*args)


def code_of(err) -> str:
    """The WIT case of a generated error value, as the host names it:
    `MemoryError_QuotaExceeded` -> `quota-exceeded`, `LlmError_Timeout` -> `timeout`."""
    case = type(err).__name__.split("_", 1)[-1]
    return "".join("-" + c.lower() if c.isupper() else c for c in case).lstrip("-")
