"""Keep numba's on-disk cache consistent with hdae's sources.

Numba keys a cached function on its own file only (modification time and size), but a kernel is
compiled into every cached function that calls it: edit ``normals.py`` and the cached
``kernels.sgd_steps_overlapped``, which calls it, keeps running the old draws. :func:`refresh`
(called by ``import hdae``, a few stats) stamps the files that hold numba code; when the stamp
changed since the caches were written, it deletes hdae's cached kernels, which numba then compiles
again. An installed release never trips it (an upgrade replaces the files and their caches); an
editable checkout does, on the first run after an edit. Where the package is read-only nothing is
touched.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
NUMBA_SOURCES = (  # every module with numba code (tests/test_numba_cache.py checks the list)
    "_activations_nb.py", "_kmeans_nb.py", "compare.py", "diagnostics.py", "mixtures.py",
    "simulation/kernels.py", "simulation/normals.py", "theory/kernels.py", "theory/transport.py",
)
STAMP = "numba_sources.stamp"


def stamp(root: Path = ROOT, files=NUMBA_SOURCES) -> str:
    """The sources' paths, modification times and sizes, a line each."""
    lines = []
    for name in files:
        try:
            st = (root / name).stat()
            lines.append(f"{name} {st.st_mtime_ns} {st.st_size}")
        except OSError:
            lines.append(f"{name} missing")
    return "\n".join(lines)


def refresh(root: Path = ROOT, files=NUMBA_SOURCES) -> int:
    """Delete hdae's numba cache files (``__pycache__/*.nbi``, ``*.nbc`` under ``root``) when the
    sources changed since the last call; returns how many were deleted."""
    marker = root / "__pycache__" / STAMP
    now = stamp(root, files)
    try:
        if marker.read_text() == now:
            return 0
    except OSError:
        pass
    deleted = 0
    for cache in list(root.rglob("__pycache__/*.nbi")) + list(root.rglob("__pycache__/*.nbc")):
        try:
            cache.unlink()
            deleted += 1
        except OSError:
            pass
    try:
        marker.parent.mkdir(exist_ok=True)
        tmp = marker.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(now)
        os.replace(tmp, marker)
    except OSError:
        pass
    return deleted
