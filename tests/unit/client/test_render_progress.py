"""``stargate job`` shows the run time a job keeps across stops; a job stopped before its first checkpoint under a
policy with a restart cost (``gittins``, the default) has a negative ``progress_s``: it is shown as 0 s kept and the
seconds it must run again, never as negative progress."""

import math

import pytest

from stargate.cli.render import progress_text, render_job
from stargate.client import Job


def job(progress_s: float | None) -> Job:
    item = Job(
        id="j-000009", name="train", queue="alpha-q", team="alpha", kind="train", gpus=8, gpu_models=[],
        priority_class="low", status="pending", reason="preempted", detail="", attempt=1,
        submitted_at="2026-11-30T12:00:00Z", started_at=None, finished_at=None, cluster=None, gpu_ids=[],
        exit_code=None, spec={"command": "train.sh"},
    )  # fmt: skip
    if progress_s is not None:
        item["progress_s"] = progress_s
    return item


@pytest.mark.parametrize(
    ("progress_s", "shown"),
    [
        (7200.0, "7,200 s kept"),
        (0.0, "0 s kept"),
        (-60.0, "0 s kept (60 s to run again first)"),
        (-0.4, "0 s kept"),  # rounds to no debt: never "0 s to run again first"
        (None, "0 s kept"),
        (math.inf, "-"),
    ],
)
def test_progress_is_never_shown_negative(progress_s: float | None, shown: str) -> None:
    assert progress_text(progress_s) == shown


def test_one_job_shows_its_restart_debt(capsys: pytest.CaptureFixture[str]) -> None:
    render_job(job(-60.0))
    line = next(x for x in capsys.readouterr().out.splitlines() if x.lstrip().startswith("progress"))
    assert line.split(None, 1)[1].strip() == "0 s kept (60 s to run again first)" and "-60" not in line


def test_a_job_from_a_server_without_progress_shows_none_kept(capsys: pytest.CaptureFixture[str]) -> None:
    render_job(job(None))
    assert any(x.split() == ["progress", "0", "s", "kept"] for x in capsys.readouterr().out.splitlines())
