"""Review of the simulations API: each defect found is one strict xfail test (the suite stays green until it is
fixed, and turns red when it is fixed so the mark is removed)."""

import time
from pathlib import Path

from integration.server.stargate_harness import Harness, build_harness

URL = "/api/v1/simulations"


def _wait(h: Harness, timeout_s: float = 30.0) -> None:
    runner = h.app.state.simulations
    deadline = time.monotonic() + timeout_s
    while not runner.idle():
        assert time.monotonic() < deadline, "the simulation did not end"
        time.sleep(0.05)


def test_a_far_submit_time_is_a_located_error_not_a_python_exception(tmp_path: Path) -> None:
    h = build_harness(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "home")
    try:
        trace = "id,submit_s,duration_s,gpus,queue\na,1e15,1,1,alpha-q\n"
        posted = h.client.post(URL, json={"trace_text": trace, "trace_format": "native"}, headers=h.headers())
        if posted.status_code == 422:  # refused up front: located at the row and the field
            assert "body.trace_text:2" in posted.text and "submit_s" in posted.text, posted.text
            return
        assert posted.status_code == 201, posted.text
        _wait(h)
        run = h.client.get(f"{URL}/{posted.json()['id']}", headers=h.headers()).json()
        error = run["error"] or ""
        assert run["status"] == "succeeded" or ("submit_s" in error and "Error" not in error), run
        if run["status"] == "succeeded":  # the job is rejected as out of range, the run's figures stay finite
            assert run["result"]["jobs_rejected"] == 1, run["result"]
    finally:
        h.client.close()
        h.ctx.db.close()
