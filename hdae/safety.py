"""Files that are never half-written, folders replaced as a whole, signals that clean up.

* :func:`atomic_path`: write a file under a temporary sibling name, ``os.replace`` it into
  place on success, remove the temporary file on any error, Ctrl-C or SIGTERM.
* :func:`staged_folder`: build a folder (``hdae run``'s output) as a temporary sibling and swap
  it in as a whole at the end: an interrupted run leaves the old folder untouched.
* :func:`check_output_path`: can the output be created at all? Checked before computing.
* :func:`signals_as_exceptions`: SIGTERM (and SIGINT) raise :class:`Interrupted` so every
  ``finally`` block (temporary files) runs; the command line exits 130 (Ctrl-C) or 143 (SIGTERM).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import uuid
from pathlib import Path


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM; ``signum`` says which. A KeyboardInterrupt, so code that already
    handles Ctrl-C handles SIGTERM the same way."""

    def __init__(self, signum: int = signal.SIGINT):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


_received: list[int] = []  # signals received while the handler was installed (newest last)


def last_signal() -> int | None:
    """The last signal caught by :func:`signals_as_exceptions` (a numba kernel turns the
    KeyboardInterrupt it raises into a SystemError; this tells such an error apart)."""
    return _received[-1] if _received else None


def _raise_interrupted(signum, frame):
    _received.append(signum)
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_as_exceptions():
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` (restored on exit).
    Does nothing outside the main thread (signal handlers can only be set there)."""
    try:
        previous = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    _received.clear()
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _tmp_sibling(path: Path, tag: str = "tmp") -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.{tag}")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success it replaces ``path`` (``os.replace``),
    on any exception (Ctrl-C and SIGTERM included) it is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def check_output_path(path) -> None:
    """Raise OSError (one line) unless a file ``path`` could be created: the nearest existing
    ancestor is a writable folder (probed with a real file: root ignores permission bits, a
    read-only file system does not) and nothing on the way is a file."""
    path = Path(path).absolute()
    parent = path.parent
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(f"cannot write {str(path)!r}: {str(parent)!r} is not a folder")
    probe = parent / f".hdae-write-test.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        probe.touch()
    except OSError as err:
        raise PermissionError(f"cannot write {str(path)!r}: folder {str(parent)!r} is not writable "
                              f"({err.strerror or err})") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


@contextlib.contextmanager
def staged_folder(out_dir, force: bool, names):
    """Build the folder ``out_dir`` as a temporary sibling; yield that sibling's path.

    On success (and on :class:`~hdae.divergence.DivergedError`, whose partial results are kept)
    the sibling replaces ``out_dir`` as a whole; on any other exception, Ctrl-C or SIGTERM it is
    removed and ``out_dir`` stays as it was. An existing ``out_dir`` is replaced only with
    ``force``, and only when it holds nothing but the run's own files ``names`` (so no other
    file of the user's is ever deleted); an existing empty folder is simply filled."""
    from .divergence import DivergedError
    from .results import OutputExistsError

    out = Path(out_dir).absolute()
    if out.exists():
        if not out.is_dir():
            raise OutputExistsError(f"{str(out)!r} exists and is not a folder")
        present = sorted(p.name for p in out.iterdir())
        foreign = [n for n in present if n not in set(names)]
        listed = lambda items: f"{', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"  # noqa: E731
        # each refusal names the remedy that works: --force only where it would be accepted
        if foreign:
            raise OutputExistsError(f"{str(out)!r} holds files that are not a run's ({listed(foreign)}); refusing "
                                    "to write into it, --force or not: give a new or empty folder with -o")
        if present and out == Path.cwd().absolute():
            raise OutputExistsError(f"{str(out)!r} is the current folder and holds a run ({listed(present)}); "
                                    "refusing to replace it as a whole: give another folder with -o")
        if present and not force:
            raise OutputExistsError(f"{str(out)!r} already holds a run ({listed(present)}); refusing to overwrite "
                                    "it (--force replaces it as a whole, or give another folder with -o)")
    check_output_path(out / "probe")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = _tmp_sibling(out, "stage")
    stage.mkdir()
    try:
        try:
            yield stage
        except DivergedError:
            _swap_in(stage, out)
            raise
        _swap_in(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def _swap_in(stage: Path, out: Path):
    """:func:`_swap_unguarded` with Ctrl-C / SIGTERM held back until the renames are done."""
    blocked = {signal.SIGINT, signal.SIGTERM}
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    except (AttributeError, OSError, ValueError):
        previous = None
    try:
        _swap_unguarded(stage, out)
    finally:
        if previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _swap_unguarded(stage: Path, out: Path):
    """Replace ``out`` by ``stage`` with two renames (the old folder is removed afterwards); an
    existing empty ``out`` (perhaps the current folder) is kept and the files are moved into it."""
    if out.is_dir() and not any(out.iterdir()):
        for p in sorted(stage.iterdir()):
            os.replace(p, out / p.name)
        return
    old = None
    if out.exists():
        old = _tmp_sibling(out, "old")
        os.replace(out, old)
    try:
        os.replace(stage, out)
    except BaseException:
        if old is not None and not out.exists():
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
