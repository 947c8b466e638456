"""fakesnow's Snowflake server in a thread, callable more than once per process.

``fakesnow.server()`` imports its own submodule ``fakesnow.server`` when it starts, and importing a submodule
sets it as an attribute of its package: after the first call, ``fakesnow.server`` is the module, and a
second test module calling ``fakesnow.server()`` fails with "'module' object is not callable". This returns
the function whatever ran before.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import fakesnow


def _server_function() -> Callable[..., AbstractContextManager[dict[str, Any]]]:
    """The function, kept before a call replaces it (and found again by reloading the package if one did).
    The package attribute stays the submodule afterwards: the function itself reads ``fakesnow.server.app``."""
    start = fakesnow.server
    if callable(start):
        return start
    module = start
    start = importlib.reload(fakesnow).server
    fakesnow.server = module
    return start


_START = _server_function()


def server(**kwargs: Any) -> AbstractContextManager[dict[str, Any]]:
    """``fakesnow.server(**kwargs)``: the connection parameters of a fake Snowflake server in a thread."""
    return _START(**kwargs)
