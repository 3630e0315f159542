"""Validation suite: every figure of the paper, theory beside finite-d simulation.

``python -m validation [--quick] [--only NAME ...] --out DIR`` (see ``__main__``); one module per
experiment under ``validation.experiments``, registered in ``validation.experiments.REGISTRY``.
"""
