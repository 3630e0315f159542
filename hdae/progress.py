"""Progress reporting for long runs: a bar on an interactive terminal, silence otherwise."""
from __future__ import annotations

import sys


class _Silent:
    def update(self, n: int = 1):
        pass

    def close(self):
        pass


class _Bar:
    def __init__(self, total: int, label: str):
        import click

        self._bar = click.progressbar(length=total, label=label, file=sys.stderr, show_eta=True, show_percent=True)
        self._bar.__enter__()

    def update(self, n: int = 1):
        self._bar.update(n)

    def close(self):
        self._bar.__exit__(None, None, None)


def progress_bar(total: int, label: str, enabled: bool | None = None):
    """A bar with ``update(n)`` and ``close()``; ``enabled=None`` shows it only when stderr is a tty."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    return _Bar(total, label) if enabled else _Silent()
