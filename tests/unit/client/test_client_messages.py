"""The API client's wording and config handling (no server: formatting only, with httpx.MockTransport)."""

import json
import re
import stat
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from stargate.cli import app
from stargate.cli.jobfile import JobFileError, loads_job
from stargate.cli.render import gpu_count, quota_text
from stargate.client import (
    ApiError,
    ConflictError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    ServerError,
    ServerUnreachableError,
    StargateClient,
    UnauthorizedError,
)
from stargate.client_config import (
    DEFAULT_URL,
    ClientConfig,
    load_config,
    save_config,
)


def answering(status: int, body: object) -> StargateClient:
    """A client whose every request gets ``status`` with ``body`` (JSON, or text when a str)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    return StargateClient("http://sg.test", "tok", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("status", "kind", "message"),
    [
        (401, UnauthorizedError, "401 unauthorised: bad token; run `stargate login --url URL --token TOKEN`"),
        (403, ForbiddenError, "403 forbidden: bad token"),
        (404, NotFoundError, "404 not found: bad token"),
        (409, ConflictError, "409 conflict: bad token"),
        (422, InvalidError, "422 invalid: bad token"),
        (503, ServerError, "503 server error: bad token"),
    ],
)
def test_each_refusal_is_its_own_exception_with_the_servers_detail(
    status: int, kind: type[ApiError], message: str
) -> None:
    with pytest.raises(kind) as caught:
        answering(status, {"detail": "bad token"}).whoami()
    assert str(caught.value) == message
    assert caught.value.exit_code == 1


def test_fastapis_validation_list_reads_as_located_lines() -> None:
    detail = [
        {"loc": ["body", "gpus"], "msg": "Input should be a valid integer", "type": "int_parsing"},
        {"loc": ["body", "queue"], "msg": "Field required", "type": "missing"},
    ]
    with pytest.raises(InvalidError) as caught:
        answering(422, {"detail": detail}).submit_job({})
    assert caught.value.detail == "body.gpus: Input should be a valid integer; body.queue: Field required"


def test_an_answer_that_is_not_json_is_a_server_error() -> None:
    with pytest.raises(ServerError, match=r"502 server error: upstream down$"):
        answering(502, "upstream  down").queues()
    with pytest.raises(ServerError, match="the answer is not JSON"):
        answering(200, "<html>").queues()


def test_no_server_is_exit_3_with_the_hint() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client = StargateClient("http://127.0.0.1:9", transport=httpx.MockTransport(refuse))
    with pytest.raises(ServerUnreachableError) as caught:
        client.health()
    assert str(caught.value) == (
        "cannot reach the Stargate server at http://127.0.0.1:9: connection refused (is `stargate up` running?)"
    )
    assert caught.value.exit_code == 3


def test_job_ids_are_one_escaped_path_segment() -> None:
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(200, json={"text": "", "next_offset": 0, "complete": True})

    client = StargateClient("http://sg.test", transport=httpx.MockTransport(record))
    client.job_logs("../fleet", 5)
    assert seen == ["/api/v1/jobs/..%2Ffleet/logs?offset=5"]


def test_env_overrides_the_saved_config_which_overrides_the_defaults(tmp_path: Path) -> None:
    env = {"STARGATE_CONFIG_DIR": str(tmp_path)}
    assert load_config(env) == ClientConfig(DEFAULT_URL, None)
    path = save_config(ClientConfig("http://saved:1", "saved-token"), env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"url": "http://saved:1", "token": "saved-token"}
    assert load_config(env) == ClientConfig("http://saved:1", "saved-token")
    assert load_config({**env, "STARGATE_URL": "http://env:2", "STARGATE_TOKEN": "t"}) == ClientConfig(
        "http://env:2", "t"
    )


def test_a_broken_config_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json: not valid JSON"):
        load_config({"STARGATE_CONFIG_DIR": str(tmp_path)})


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("[1]", "found a JSON list; expected an object with url and token"),
        ('{"url": 5}', "url: found 5; expected an http:// or https:// URL"),
        ('{"url": "notaurl"}', 'url: found "notaurl"; expected an http:// or https:// URL'),
        ('{"url": "http://h:1", "token": 7}', "token: found 7; expected a string"),
        (None, "cannot read it (Is a directory)"),
    ],
)
def test_a_config_that_is_not_one_is_a_one_line_exit_2(tmp_path: Path, content: str | None, said: str) -> None:
    path = tmp_path / "config.json"
    if content is None:
        path.mkdir()
    else:
        path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(f"{path}: {said}")):
        load_config({"STARGATE_CONFIG_DIR": str(tmp_path)})
    result = CliRunner().invoke(app, ["jobs"], env={"STARGATE_CONFIG_DIR": str(tmp_path), "STARGATE_URL": None})
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {path}: {said}") and result.stderr.count("\n") == 1


def test_login_with_a_url_that_is_not_one_is_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["login", "--url", "notaurl", "--token", "t"], env={"STARGATE_CONFIG_DIR": str(tmp_path)}
    )
    assert result.exit_code == 2
    assert result.stderr == 'error: --url: found "notaurl"; expected an http:// or https:// URL such as ' + (
        f"{DEFAULT_URL}\n"
    )
    assert not (tmp_path / "config.json").exists()


@pytest.mark.parametrize(
    "args",
    [["jobs", "--limit", "0"], ["jobs", "--limit", "501"], ["logs", "j-000001", "--interval", "-1"]],
)
def test_an_option_out_of_range_is_one_line_and_exit_2(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, args, env={"STARGATE_CONFIG_DIR": str(tmp_path)})
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {args[-2]}: found {args[-1]}; expected") and result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name: a\nqueue: q\ngpus: 1\nenvironment: {A: 1\n", "job.yaml:5:1: (document): found invalid YAML"),
        ("name: a\nqueue: q\ngpus: [1\n", "job.yaml:3:7: gpus: found a list; expected a single value"),
        ("", "job.yaml:1:1: (document): found an empty document"),
        ("- 1\n- 2\n", "job.yaml:1:1: (document): found a list at the top level"),
        ("name: a\nqueue: q\n", "job.yaml:1:1: gpus: found nothing (the key is missing)"),
        ("name: a\nqueue: q\ngpus: -1\n", "job.yaml:3:1: gpus: found -1; expected an integer at least 1"),
        ("name: a\nqueue: q\ngpus: 1\nkind: gang\n", "job.yaml:4:1: kind: found 'gang'; expected one of"),
        (
            "name: a\nqueue: q\ngpus: 1\ncommand: x\nestimated_duration_s: .inf\n",
            "job.yaml:5:1: estimated_duration_s: found inf",
        ),
        (
            "name: a\nqueue: q\ngpus: 1\ncommand: x\ncheckpoint_interval_s: .nan\n",
            "job.yaml:5:1: checkpoint_interval_s: found nan",
        ),
        ("name: a\nqueue: q\ngpus: 1\n", "job.yaml:1:1: (document): found neither 'command' nor 'image'; expected a"),
    ],
)
def test_job_file_problems_are_located(text: str, problem: str) -> None:
    with pytest.raises(JobFileError) as caught:
        loads_job(text, "job.yaml")
    assert str(caught.value.problems[0]).startswith(problem)


def test_a_valid_job_file_gives_the_spec() -> None:
    spec = loads_job("name: a\nqueue: q\ngpus: 2\ncommand: echo hi\n", "job.yaml")
    assert (spec.name, spec.queue, spec.gpus, spec.command) == ("a", "q", 2, "echo hi")


def test_gpu_counts_read_in_the_singular_and_with_thousands_separators() -> None:
    assert (gpu_count(1), gpu_count(2), gpu_count(40_000)) == ("1 GPU", "2 GPUs", "40,000 GPUs")
    quota = {"gpu_model": "*", "gpus": 40_000, "borrowing_limit_gpus": 20_000}
    assert quota_text(quota) == "any GPU: 40,000 GPUs (+20,000 borrowable)"
