"""Names a package re-exports, imported from their modules only when first used.

`certissuer` and `certissuer.web` list their public names in ``__all__`` but import the
modules behind them on first use: the CLI's ``--help`` needs no SQLAlchemy or pyHanko, and the
page's PDF workers, which import `certissuer.web.worker` under a memory limit, need no FastAPI.
A package declares where each name lives and hands the lookup to Python's module
``__getattr__`` (PEP 562); type checkers read the same names from an
``if TYPE_CHECKING:`` import block.

>>> __getattr__ = lazy_attributes(__name__, {"Ledger": "certissuer.ledger"})  # doctest: +SKIP
>>> certissuer.Ledger  # doctest: +SKIP
<class 'certissuer.ledger.ledger.Ledger'>
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for `package` that imports each name from its module on use.

    `package` is the dotted name of the package (its ``__name__``), used in the error; `where`
    maps each lazily exported name to the dotted module that defines it. The function
    returned raises `AttributeError` for any other name, as Python would.
    """

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
