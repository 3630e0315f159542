"""Activation functions sigma and their derivatives sigma', from one table.

Every backend (numpy for tests and transport, numba for the quadrature kernels,
torch for the finite-d simulation) reads the same table, so the formulas exist
once per backend and the names and codes are shared.

Conventions: ``erf`` is ``erf(x / sqrt 2)`` (the probit-like normalisation common
in this literature, with sigma'(0) = sqrt(2/pi)); ``sigmoid`` is ``1/(1+e^-x)``;
the derivative of ``relu`` at 0 is taken as 0.
"""
from __future__ import annotations

import math

import numpy as np

#: name -> integer code used inside numba kernels
CODES = {"tanh": 0, "relu": 1, "erf": 2, "sigmoid": 3, "linear": 4}
NAMES = tuple(CODES)
#: activations with sigma(-x) = -sigma(x) (their generated densities are symmetric)
ODD = frozenset({"tanh", "erf", "linear"})
_SQRT2 = math.sqrt(2.0)
_ERF_SLOPE = math.sqrt(2.0 / math.pi)


def code(name: str) -> int:
    """Integer code of activation ``name`` (ValueError naming the choices otherwise)."""
    try:
        return CODES[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(NAMES)}") from None


# ---------------------------------------------------------------- numpy
def _np_sigmoid(x):
    from scipy import special

    return special.expit(x)


def _np_erf(x):
    from scipy import special

    return special.erf(x / _SQRT2)


_NUMPY = {
    "tanh": (np.tanh, lambda x: 1.0 - np.tanh(x) ** 2),
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(np.result_type(x, 1.0))),
    "erf": (_np_erf, lambda x: _ERF_SLOPE * np.exp(-0.5 * np.square(x))),
    "sigmoid": (_np_sigmoid, lambda x: _np_sigmoid(x) * (1.0 - _np_sigmoid(x))),
    "linear": (lambda x: np.asarray(x, dtype=float) * 1.0, lambda x: np.ones_like(x, dtype=float)),
}


def numpy_pair(name: str):
    """(sigma, sigma') as vectorised numpy functions."""
    code(name)
    return _NUMPY[name]


# ---------------------------------------------------------------- numba
def __getattr__(name):
    """``nb_sigma``, ``nb_dsigma`` and ``nb_sigma_dsigma`` (hdae/_activations_nb.py) load numba on first use only, so that
    commands that never compile anything start fast."""
    if name in ("nb_sigma", "nb_dsigma", "nb_sigma_dsigma"):
        from . import _activations_nb

        return getattr(_activations_nb, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------- torch
def torch_pair(name: str):
    """(sigma, sigma') as torch functions (imported lazily: the theory never needs torch)."""
    import torch

    code(name)
    table = {
        "tanh": (torch.tanh, lambda x: 1.0 - torch.tanh(x) ** 2),
        "relu": (torch.relu, lambda x: (x > 0).to(x.dtype)),
        "erf": (lambda x: torch.special.erf(x / _SQRT2), lambda x: _ERF_SLOPE * torch.exp(-0.5 * x * x)),
        "sigmoid": (torch.sigmoid, lambda x: torch.sigmoid(x) * (1.0 - torch.sigmoid(x))),
        "linear": (lambda x: x, torch.ones_like),
    }
    return table[name]
