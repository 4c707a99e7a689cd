"""The CLI shows a job's reason code and its detail: a REASON and a DETAIL column in ``stargate jobs``, a ``reason``
and a ``detail`` line in ``stargate job``; a detail from another user's command is escaped like any text."""

import pytest

from stargate.cli.render import render_job, render_jobs
from stargate.client import Job


def job(reason: str, detail: str) -> Job:
    return Job(
        id="j-000007", name="eval", queue="alpha-q", team="alpha", kind="batch", gpus=1, gpu_models=[],
        priority_class="low", status="failed", reason=reason, detail=detail, attempt=0,
        submitted_at="2026-11-30T12:00:00Z", started_at=None, finished_at=None, cluster="lab-a", gpu_ids=[0],
        exit_code=3, spec={"command": "exit 3"},
    )  # fmt: skip


def test_the_jobs_table_has_a_reason_and_a_detail_column(capsys: pytest.CaptureFixture[str]) -> None:
    render_jobs([job("failed", "exited with code 3"), job("no_cluster_fits", "")], None)
    header, *rows = [line for line in capsys.readouterr().out.splitlines() if "REASON" in line or "j-000007" in line]
    assert header.index("REASON") < header.index("DETAIL")
    assert "failed" in rows[0] and "exited with code 3" in rows[0]
    assert "no_cluster_fits" in rows[1]


def test_one_job_shows_its_reason_and_detail(capsys: pytest.CaptureFixture[str]) -> None:
    render_job(job("start_failed", "on local executor after 3 tries: boom\x1b[2K"))
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split() == ["reason", "start_failed"] for line in lines)
    detail = next(line for line in lines if line.lstrip().startswith("detail"))
    assert "on local executor after 3 tries: boom\\x1b[2K" in detail and "\x1b" not in detail


def test_a_job_from_a_server_without_details_shows_a_dash(capsys: pytest.CaptureFixture[str]) -> None:
    older = job("exited with code 3", "")
    del older["detail"]  # type: ignore[misc]
    render_job(older)
    assert any(line.split() == ["detail", "-"] for line in capsys.readouterr().out.splitlines())


def test_a_pending_job_shows_why_it_waits(capsys: pytest.CaptureFixture[str]) -> None:
    pending = job("submitted", "") | {"status": "pending", "cluster": None, "gpu_ids": [], "exit_code": None}
    pending["waiting"] = {"reason": "capacity", "detail": "largest free block on its 1 cluster: 4 GPUs (lab-a)"}
    render_job(pending)  # type: ignore[arg-type]
    lines = capsys.readouterr().out.splitlines()
    line = next(line for line in lines if line.lstrip().startswith("waiting"))
    assert line.split(None, 1)[1].rstrip() == "capacity: largest free block on its 1 cluster: 4 GPUs (lab-a)"
    render_jobs([pending, job("failed", "exited with code 3")], None)  # type: ignore[list-item]
    header, *rows = [line for line in capsys.readouterr().out.splitlines() if "WAITS" in line or "j-000007" in line]
    assert header.index("DETAIL") < header.index("WAITS")
    cells = [[c.strip() for c in row.split("│")[1:-1]] for row in rows]
    assert (cells[0][-1], cells[1][-1]) == ("capacity", "")
