"""Removing what an executor wrote for a run, without ever following a symbolic link out of its own directories.

A job may own part of what is removed (its working directory, and in ``users`` isolation the team directory above
it) and may put symbolic links there, or swap a directory for one while it is removed: every step here goes through
directory descriptors opened with ``O_NOFOLLOW`` from a directory the server owns, so a removal (as root, perhaps)
never leaves it. A directory or file the job made unwritable or unreadable (mode 000) is opened up first, through
its own descriptor.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH = getattr(os, "O_PATH", os.O_RDONLY)
"""Linux's ``O_PATH``: a descriptor of the directory itself, whatever its mode."""


def names_in(path: Path, *, directories: bool = False) -> list[str]:
    """The names in directory ``path`` not starting with '.' (``directories``: only directories, never a symbolic
    link to one), sorted; none when it does not exist or cannot be read."""
    try:
        with os.scandir(path) as entries:
            return sorted(
                e.name
                for e in entries
                if not e.name.startswith(".") and (not directories or e.is_dir(follow_symlinks=False))
            )
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def dirs_in(path: Path) -> list[str]:
    """The directories in ``path`` (see :func:`names_in`)."""
    return names_in(path, directories=True)


def safe_part(name: str) -> bool:
    """True when ``name`` is one path component (no '/', not empty, '.' nor '..', no NUL)."""
    return bool(name) and "/" not in name and "\0" not in name and name not in {".", ".."}


def remove_below(root: Path, parts: Sequence[str], *, parents: int = 0) -> bool:
    """Remove ``root/<parts...>`` (a file, or a directory and all it holds) without following a symbolic link in
    any of ``parts``, then up to ``parents`` of its parent directories that it left empty (nearest first). False
    when it was not there; ValueError for a part that is not one path component; OSError when it cannot be removed
    (a symbolic link where a directory should be is left alone and raises ``ELOOP``)."""
    if not parts or not all(safe_part(p) for p in parts):
        raise ValueError(f"not a path below {root}: {'/'.join(parts)!r}")
    fds = [os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
    try:
        for part in parts[:-1]:
            try:
                fds.append(os.open(part, _DIR, dir_fd=fds[-1]))
            except FileNotFoundError:
                return False
        removed = _remove(fds[-1], parts[-1])
        levels = list(zip(reversed(fds[:-1]), reversed(parts[:-1]), strict=True))[:parents]
        for fd, part in levels:
            try:
                os.rmdir(part, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT, errno.EBUSY):
                    break
                raise
        return removed
    finally:
        for fd in fds:
            os.close(fd)


def _remove(dir_fd: int, name: str) -> bool:
    """Remove ``name`` in the open directory ``dir_fd`` (a directory: with all it holds); False when not there."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(info.st_mode):
        _empty(dir_fd, name, info)
        _unlinked(dir_fd, name, directory=True)
    else:
        _unlinked(dir_fd, name, directory=False)
    return True


MAX_DEPTH = 64
"""Directories held open at once while a tree is removed: a deeper subtree is moved up into the top directory being
emptied (renamed under a fresh name, never leaving it) and removed from there, so a job's tree of any depth is
removed with a bounded number of descriptors and no recursion."""


def _empty(dir_fd: int, name: str, info: os.stat_result) -> None:
    """Remove everything in the directory ``name`` of ``dir_fd`` (which ``info`` describes): depth first, with an
    explicit stack of open directories (each entry: its descriptor, its name in its parent, names left to remove)."""
    stack: list[tuple[int, str, list[str]]] = []
    try:
        top = _opened(dir_fd, name, info)
        stack.append((top, name, _names(top)))
        moved = 0
        while stack:
            fd, _, left = stack[-1]
            if not left:
                left.extend(_names(fd))  # what appeared meanwhile
                if not left:
                    fd, gone, _ = stack.pop()
                    os.close(fd)
                    if stack:
                        _unlinked(stack[-1][0], gone, directory=True)
                    continue
            entry = left.pop()
            try:
                found = os.stat(entry, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(found.st_mode):
                _unlinked(fd, entry, directory=False)
            elif len(stack) < MAX_DEPTH:
                child = _opened(fd, entry, found)
                stack.append((child, entry, _names(child)))
            else:  # too deep to hold open: move it up into the top directory, which is emptied until nothing is left
                moved = _moved_up(fd, entry, top, moved)
                stack[0][2].append(f".stargate-deep-{moved}")
    finally:
        for fd, _, _ in stack:
            os.close(fd)


def _opened(dir_fd: int, name: str, info: os.stat_result) -> int:
    """A descriptor of the directory ``name`` of ``dir_fd``, checked to be the one ``info`` describes (opened up
    first when its owner, the job, made it unreadable)."""
    try:
        fd = os.open(name, _DIR, dir_fd=dir_fd)
    except PermissionError:  # made unreadable by its owner (the job): open it up through a descriptor of its own
        _open_up(dir_fd, name)
        fd = os.open(name, _DIR, dir_fd=dir_fd)
    if not os.path.samestat(info, os.fstat(fd)):
        os.close(fd)
        raise OSError(errno.ESTALE, f"{name} was replaced while it was being removed")
    return fd


def _moved_up(fd: int, name: str, top: int, moved: int) -> int:
    """Rename the directory ``name`` of ``fd`` into ``top`` as ``.stargate-deep-<n>``, the first n after ``moved``
    free there (a name the job took for a file or a directory holding something is skipped; an empty directory is
    replaced, all of it being removed anyway); that n."""
    while True:
        moved += 1
        try:
            os.rename(name, f".stargate-deep-{moved}", src_dir_fd=fd, dst_dir_fd=top)
            return moved
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR) or moved > 1_000_000:
                raise


def _names(fd: int) -> list[str]:
    """The names in the open directory ``fd``."""
    with os.scandir(fd) as entries:
        return [e.name for e in entries]


def _unlinked(dir_fd: int, name: str, *, directory: bool) -> None:
    """Unlink ``name`` in ``dir_fd``; when its directory was made unwritable by its owner, open it up once."""
    remove = os.rmdir if directory else os.unlink
    try:
        remove(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    except PermissionError:
        os.fchmod(dir_fd, stat.S_IMODE(os.fstat(dir_fd).st_mode) | stat.S_IRWXU)
        with contextlib.suppress(FileNotFoundError):
            remove(name, dir_fd=dir_fd)


def _open_up(dir_fd: int, name: str) -> None:
    """Give the owner rwx on the directory ``name`` of ``dir_fd`` through an ``O_PATH`` descriptor of it (never
    through a symbolic link swapped in meanwhile)."""
    fd = os.open(name, _PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.chmod(f"/proc/self/fd/{fd}", stat.S_IRWXU)
    finally:
        os.close(fd)
