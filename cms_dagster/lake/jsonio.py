"""JSON to and from bytes: orjson where installed (fast), the standard library otherwise.

The collector's Lambda zip carries pure Python only (the Lambda runtime has no orjson), so the modules on
the collector's path use this instead of importing orjson directly. Both produce compact UTF-8 JSON.
"""

from __future__ import annotations

from typing import Any

try:
    import orjson

    def dumps(obj: Any, *, indent: bool = False, sort_keys: bool = False) -> bytes:
        opt = (orjson.OPT_INDENT_2 if indent else 0) | (orjson.OPT_SORT_KEYS if sort_keys else 0)
        return orjson.dumps(obj, option=opt or None)

    loads = orjson.loads
except ImportError:  # pragma: no cover - exercised by the Lambda package check
    import json

    def dumps(obj: Any, *, indent: bool = False, sort_keys: bool = False) -> bytes:
        if indent:
            return json.dumps(obj, indent=2, sort_keys=sort_keys, ensure_ascii=False).encode()
        return json.dumps(obj, separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=False).encode()

    def loads(data: bytes | str) -> Any:
        return json.loads(data)
