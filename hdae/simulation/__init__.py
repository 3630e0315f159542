"""Finite-d ground truth: online SGD of the DAE and the d-dimensional generative sampler (torch)."""
from .run import generated_samples, simulate
from .sampler import sample_finite_d
from .sgd import OnlineSGD

__all__ = ["generated_samples", "simulate", "sample_finite_d", "OnlineSGD"]
