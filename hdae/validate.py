"""Checks of problem-file values, each raising a one-line :class:`ConfigError` that names the key.

A leaf module (it imports nothing from hdae): :mod:`hdae.config` and every target kind use it.
"""
from __future__ import annotations

import copy
import math

import numpy as np


class ConfigError(ValueError):
    """A bad problem description; ``str(err)`` is one line that names the key."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


# ----------------------------------------------------------------------------- schema
# Each section maps key -> (checker, default). A default of REQUIRED must be given;
# a default of None means "optional, absent unless given".
REQUIRED = object()


def _num(key, v, lo=-math.inf, hi=math.inf, lo_open=False, hi_open=False):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(key, f"expected a number, got {v!r}")
    v = float(v)
    if not math.isfinite(v):
        raise ConfigError(key, f"must be finite, got {v}")
    if v < lo or (lo_open and v == lo) or v > hi or (hi_open and v == hi):
        left = "(" if lo_open or lo == -math.inf else "["
        right = ")" if hi_open or hi == math.inf else "]"  # values are finite: inf is never in the range
        raise ConfigError(key, f"must lie in {left}{lo:g}, {hi:g}{right}, got {v:g}")
    return v


def _int(key, v, lo=-math.inf):
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(key, f"expected an integer, got {v!r}")
    if v < lo:
        raise ConfigError(key, f"must be >= {lo:g}, got {v}")
    return v


def _choice(key, v, choices):
    if v not in choices:
        raise ConfigError(key, f"unknown value {v!r}; choose one of {', '.join(map(str, choices))}")
    return v


def _num_list(key, v, lo=-math.inf, hi=math.inf, lo_open=False, hi_open=False, min_len=1):
    if not isinstance(v, list) or len(v) < min_len:
        raise ConfigError(key, f"expected a list of at least {min_len} number(s), got {v!r}")
    return [_num(f"{key}[{i}]", x, lo, hi, lo_open, hi_open) for i, x in enumerate(v)]


def _matrix(key, v, width=None):
    """A non-empty list of equal-length lists of finite numbers -> (n, k) float array."""
    if not isinstance(v, list) or not v or not all(isinstance(row, list) for row in v):
        raise ConfigError(key, f"expected a list of lists of numbers, got {v!r}")
    rows = [_num_list(f"{key}[{i}]", row) for i, row in enumerate(v)]
    if len({len(r) for r in rows}) != 1:
        raise ConfigError(key, "all rows must have the same length")
    if width is not None and len(rows[0]) != width:
        raise ConfigError(key, f"rows must have length {width}, got {len(rows[0])}")
    return np.array(rows, dtype=float)


def _weights(key, v, n):
    w = _num_list(key, v, lo=0.0)
    if len(w) != n:
        raise ConfigError(key, f"expected {n} weights, got {len(w)}")
    if abs(sum(w) - 1.0) > 1e-6:
        raise ConfigError(key, f"weights must sum to 1, they sum to {sum(w):.12g}")
    return np.array(w) / sum(w)


def _raise(key, msg):
    raise ConfigError(key, msg)


def _check_table(table: dict, spec: dict, prefix: str) -> dict:
    if not isinstance(table, dict):
        raise ConfigError(prefix, f"expected a table, got {table!r}")
    unknown = sorted(set(table) - set(spec))
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}" if prefix else unknown[0],
                          f"unknown key; known keys: {', '.join(sorted(spec))}")
    out = {}
    for key, (check, default) in spec.items():
        full = f"{prefix}.{key}" if prefix else key
        if key in table:
            value = check(full, table[key])
            out[key] = table[key] if isinstance(table[key], (str, bool)) else _plain(value)
        elif default is REQUIRED:
            raise ConfigError(full, "missing required key")
        elif default is not None:
            out[key] = copy.deepcopy(default)
    return out


def _plain(value):
    """Normalise values to plain TOML-able python (numpy scalars/arrays -> floats, ints, lists)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
