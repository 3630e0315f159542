"""Minimal TOML writer for resolved problem configurations (the standard library only reads TOML).

Handles what problem files contain: scalars (bool, int, float, str), arrays (nested), inline
tables inside arrays, and (nested) tables. ``loads(dumps(cfg)) == cfg`` for such dicts.
"""
from __future__ import annotations

import math
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

loads = tomllib.loads


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _string(v: str) -> str:
    out = []
    for ch in v:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _scalar(v) -> str:
    if hasattr(v, "tolist") and not isinstance(v, (list, tuple, dict)):  # numpy scalars and arrays
        return _scalar(v.tolist())
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(float(v))
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_scalar(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _scalar(k)


def dumps(cfg: dict) -> str:
    """Serialise a nested dict to TOML text (plain keys first, then one [table] per sub-dict)."""
    lines: list[str] = []

    def emit(table: dict, prefix: str):
        plain = {k: v for k, v in table.items() if not isinstance(v, dict)}
        subs = {k: v for k, v in table.items() if isinstance(v, dict)}
        if prefix and (plain or not subs):
            lines.append(f"\n[{prefix}]")
        for k, v in plain.items():
            lines.append(f"{_key(k)} = {_scalar(v)}")
        for k, v in subs.items():
            emit(v, f"{prefix}.{_key(k)}" if prefix else _key(k))

    emit(cfg, "")
    return "\n".join(lines).lstrip("\n") + "\n"
