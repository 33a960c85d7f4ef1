"""Module-level `__getattr__` for packages whose names load on first use (PEP 562), so that importing the
package stays light (no TensorFlow) for the edge runtime."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_getattr(package: str, where: dict[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A `__getattr__` for `package`: a name in `where` (name -> module) is imported from its module and cached
    in `namespace`; any other name is tried as a submodule."""

    def __getattr__(name: str) -> Any:
        if name in where:
            value = getattr(importlib.import_module(where[name]), name)
            namespace[name] = value
            return value
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{package}.{name}":
                raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    return __getattr__
