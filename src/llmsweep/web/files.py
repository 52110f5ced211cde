"""The run's files for the web front end: listed and read, confined to the run's folder
whatever the path's spelling (.., absolute, a link pointing out)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from llmsweep.paths import RunPaths
from llmsweep.web.failure import BAD, MISSING, Failure

VIEW_LIMIT = 4 * 2**20  # bytes of a file shown in the page; downloads take all


def confined(paths: RunPaths, rel: str) -> Path:
    """`rel` inside the run's folder, symlinks resolved; anything that leaves it is a
    bad request."""
    if not paths.root.is_dir():
        raise Failure(MISSING, f"no run {paths.run}")
    rel = rel or "."
    if not _plain(rel):
        raise Failure(BAD, f"path {rel!r} is not inside the run's folder")
    path = (paths.root / rel).resolve()
    if not _inside(path, paths.root.resolve()):
        raise Failure(BAD, f"path {rel!r} leads out of the run's folder")
    if not path.exists():
        raise Failure(MISSING, f"no {rel} in run {paths.run}")
    return path


def _plain(rel: str) -> bool:
    """A relative path that does not climb (no .., no backslashes, no NUL)."""
    bad = "\0" in rel or "\\" in rel or rel.startswith("/")
    return not bad and ".." not in PurePosixPath(rel).parts


def _inside(real: Path, real_root: Path) -> bool:
    return real == real_root or real_root in real.parents


def ls(paths: RunPaths, rel: str) -> dict:
    """The folder's entries, folders first; links out of the run are left out."""
    path = confined(paths, rel)
    if not path.is_dir():
        raise Failure(BAD, f"{rel} is not a folder")
    root = paths.root.resolve()
    children = sorted(path.iterdir(), key=lambda p: (not p.is_dir(), p.name))
    entries = [e for e in (_entry(paths, root, child) for child in children) if e]
    here = "" if path == root else str(path.relative_to(root))
    return {"run": paths.run, "path": here, "entries": entries}


def _entry(paths: RunPaths, real_root: Path, child: Path) -> dict | None:
    """The listing's row of `child`; None for one that cannot be read, or a link out of the
    run (not shown, and it cannot be opened)."""
    try:
        inside = _inside(child.resolve(), real_root)
        st = child.stat()
    except OSError:
        return None
    if not inside:
        return None
    return {
        "name": child.name,
        "dir": child.is_dir(),
        "size": st.st_size,
        "mtime": st.st_mtime,
        "path": str(child.relative_to(paths.root)),
    }


def cat(paths: RunPaths, rel: str, limit: int | None) -> bytes:
    """The file's bytes: the first `limit` of them, or all."""
    path = confined(paths, rel)
    if not path.is_file():
        raise Failure(BAD, f"{rel} is not a file")
    with open(path, "rb") as f:
        return f.read(limit) if limit else f.read()
