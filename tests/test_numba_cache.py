"""hdae._numba_cache: numba's cache is dropped when a numba source changed (a kernel compiled into
another module's cached function would otherwise stay stale), and kept otherwise."""
from __future__ import annotations

import re
from pathlib import Path

from hdae import _numba_cache

JIT = re.compile(r"@njit|njit\(|@vectorize|@guvectorize|@jit\b")


def test_list_holds_every_module_with_numba_code():
    root = _numba_cache.ROOT
    found = {p.relative_to(root).as_posix() for p in root.rglob("*.py")
             if "__pycache__" not in p.parts and JIT.search(p.read_text())}
    assert found == set(_numba_cache.NUMBA_SOURCES)


def _tree(tmp_path: Path):
    (tmp_path / "sub" / "__pycache__").mkdir(parents=True)
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    caches = [tmp_path / "sub" / "__pycache__" / "b.f-1.py311.nbi", tmp_path / "sub" / "__pycache__" / "b.f-1.py311.1.nbc"]
    for c in caches:
        c.write_bytes(b"cache")
    return ("a.py", "sub/b.py"), caches


def test_refresh_drops_caches_when_a_source_changes(tmp_path):
    files, caches = _tree(tmp_path)
    assert _numba_cache.refresh(tmp_path, files) == 2  # no stamp yet: caches of unknown age go
    assert not any(c.exists() for c in caches)
    for c in caches:
        c.write_bytes(b"cache")  # compiled again
    assert _numba_cache.refresh(tmp_path, files) == 0  # nothing changed: kept
    assert all(c.exists() for c in caches)
    (tmp_path / "a.py").write_text("x = 10\n")  # an edit of another module than the cached one
    assert _numba_cache.refresh(tmp_path, files) == 2
    assert not any(c.exists() for c in caches)
    assert (tmp_path / "__pycache__" / _numba_cache.STAMP).read_text() == _numba_cache.stamp(tmp_path, files)
