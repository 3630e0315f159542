"""Finite-d ground truth: online SGD of the DAE and the d-dimensional generative sampler.

On CPU everything is numpy arrays (the numba SGD kernel, the numpy sampler) and torch is never
imported; on CUDA the weights are torch tensors and the torch step and sampler run."""
from .run import generated_samples, simulate
from .sampler import sample_finite_d
from .sgd import OnlineSGD

__all__ = ["generated_samples", "simulate", "sample_finite_d", "OnlineSGD"]
