"""A reviewer's checks of the dashboard's routes and of the demo that leads to it, on a real ``stargate up``.

Each defect the review found began as an ``xfail(strict=True)`` test failing for the reason it named; all are fixed
and the marks are gone.
"""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from e2e.e2e_support import ServerFactory, ServerProcess, child_environment, run_cli

PROJECT = Path(__file__).resolve().parents[3]
DEMO = PROJECT / "scripts" / "demo.sh"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    factory = ServerFactory(tmp_path_factory.mktemp("ui-routes"))
    yield factory(fleet=PROJECT / "examples" / "stargate-2025", interval_s=0.5).start()
    factory.cleanup()


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def test_the_demos_plan_step_succeeds_so_the_demo_goes_on(server: ServerProcess, tmp_path: Path) -> None:
    """The demo's own line, run as the demo runs it (bash with ``set -euo pipefail``, logged in as the admin)."""
    line = next(x for x in DEMO.read_text().splitlines() if x.startswith("stargate plan submit"))
    assert "stargate plan submit" in line  # the line this test is about (it once piped into head under pipefail)
    env = child_environment({"STARGATE_CONFIG_DIR": str(tmp_path)})
    token_file = server.home / "admin-token"
    login = run_cli(["login", "--url", server.url, "--token-file", str(token_file)], env)
    assert login.returncode == 0, login.stderr
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # the venv's stargate, as the demo puts it first
    done = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{line}\necho GOES-ON"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.stdout.startswith("plan p-"), done.stdout + done.stderr  # the plan was computed: the step itself works
    assert done.returncode == 0 and "GOES-ON" in done.stdout, f"exit {done.returncode}: {done.stderr[-500:]}"


@pytest.mark.parametrize(
    "path",
    [
        "/ui/static/..%2fassets.py",
        "/ui/static/%2e%2e/%2e%2e/ui/assets.py",
        "/ui/static/..%5cassets.py",
        "/ui/static/%2fetc%2fpasswd",
        "/ui/static/APP.JS",
    ],
)
def test_no_path_outside_the_dashboards_own_files_is_served(http: httpx.Client, path: str) -> None:
    """Encoded dot segments, backslashes and absolute paths (httpx itself removes plain ``../``)."""
    answer = http.get(path)
    assert answer.status_code == 404
    assert answer.json()["detail"].startswith("path: found '/ui/static/")


def test_a_client_that_refuses_gzip_gets_the_plain_file(http: httpx.Client) -> None:
    answer = http.get("/ui/static/app.js", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert answer.status_code == 200
    assert answer.headers.get("content-encoding") is None


@pytest.mark.parametrize("path", ["/ui", "/ui/static/app.js"])
def test_head_answers_like_get_without_a_body(http: httpx.Client, path: str) -> None:
    answer = http.head(path)
    assert answer.status_code == 200
    assert answer.headers.get("etag") == http.get(path).headers.get("etag")


@pytest.mark.parametrize("form", ['"other", {etag}', "W/{etag}", "*"])
def test_a_matching_if_none_match_in_any_valid_form_gets_304(http: httpx.Client, form: str) -> None:
    etag = http.get("/ui/static/lib.js").headers["etag"]
    answer = http.get("/ui/static/lib.js", headers={"If-None-Match": form.format(etag=etag)})
    assert answer.status_code == 304
