"""Removing a run's files never leaves the directory it was asked to work in: a symbolic link a job left is removed,
not followed, one where a directory should be stops the removal, and directories a job made unreadable or
unwritable are removed all the same (as their owner, not only as root)."""

import errno
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from stargate.executors.prune_files import remove_below

ROOT = os.geteuid() == 0


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(work root, a directory outside it holding a file no removal may touch)."""
    work, outside = tmp_path / "work", tmp_path / "outside"
    (work / "team" / "j-000001" / "attempt-0").mkdir(parents=True)
    outside.mkdir()
    (outside / "keep").write_text("precious")
    yield work, outside


def test_a_link_inside_is_removed_not_followed_and_empty_parents_go_as_far_as_asked(tree: tuple[Path, Path]) -> None:
    work, outside = tree
    run = work / "team" / "j-000001" / "attempt-0"
    (run / "escape").symlink_to(outside)
    (run / "file").symlink_to(outside / "keep")
    (run / "deep" / "er").mkdir(parents=True)
    assert remove_below(work, ["team", "j-000001", "attempt-0"], parents=1) is True
    assert (outside / "keep").read_text() == "precious"
    assert not (work / "team" / "j-000001").exists() and (work / "team").is_dir()  # one parent, not two
    assert remove_below(work, ["team", "j-000001", "attempt-0"], parents=1) is False  # gone already


def test_a_link_where_a_directory_should_be_stops_the_removal(tree: tuple[Path, Path]) -> None:
    work, outside = tree
    shutil.rmtree(work / "team" / "j-000001")
    (work / "team" / "j-000001").symlink_to(outside)
    (outside / "attempt-0").mkdir()
    with pytest.raises(OSError) as caught:
        remove_below(work, ["team", "j-000001", "attempt-0"])
    assert caught.value.errno in (errno.ELOOP, errno.ENOTDIR)
    assert (outside / "attempt-0").is_dir() and (outside / "keep").exists()
    for bad in (["..", "x"], ["team/j-000001"], [""], []):
        with pytest.raises(ValueError, match="not a path below"):
            remove_below(work, bad)


SCRIPT = """
import os, sys
from pathlib import Path
from stargate.executors.prune_files import remove_below
root = Path(sys.argv[1])
run = root / "j-000001" / "attempt-0"
(run / "locked" / "inner").mkdir(parents=True)
(run / "locked" / "inner" / "f").write_text("x")
(run / "readonly").mkdir()
(run / "readonly" / "g").write_text("y")
os.chmod(run / "locked" / "inner", 0)
os.chmod(run / "locked", 0)
os.chmod(run / "readonly", 0o500)
print(remove_below(root, ["j-000001", "attempt-0"]), (run).exists())
"""


def test_directories_a_job_locked_are_removed_by_their_owner() -> None:
    """Run as an unprivileged account (``nobody`` when the tests run as root: root passes any mode)."""
    base = Path(tempfile.mkdtemp(prefix="sg-prune-"))
    try:
        (base / "j-000001" / "attempt-0").mkdir(parents=True)
        argv = [sys.executable, "-c", SCRIPT, str(base)]
        if ROOT:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("setpriv is needed to drop root")
            os.chmod(base, 0o755)
            for path in (base, *base.rglob("*")):
                os.chown(path, 65534, 65534)
            argv = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[3] / "src")}
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["True", "False"]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_tree_deeper_than_the_open_directories_allowed_is_removed_whatever_names_it_holds(tmp_path: Path) -> None:
    """3,000 nested directories (deeper than Python's recursion and MAX_DEPTH), a file and an empty directory named as
    the moved-up subtrees will be at the top: everything goes, with no descriptor left open."""
    top = tmp_path / "runs" / "j-000001"
    top.mkdir(parents=True)
    (top / ".stargate-deep-1").write_text("a job's file\n")
    (top / ".stargate-deep-2").mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(3000):  # relative to a descriptor: the path would be longer than PATH_MAX
        os.mkdir("d", dir_fd=fd)
        deeper = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = deeper
    os.close(os.open("leaf", os.O_WRONLY | os.O_CREAT, dir_fd=fd))
    os.close(fd)
    before = len(os.listdir("/proc/self/fd"))
    assert remove_below(tmp_path, ["runs", "j-000001"], parents=1)
    assert not (tmp_path / "runs").exists()
    assert len(os.listdir("/proc/self/fd")) == before
