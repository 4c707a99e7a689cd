"""The CLI imports only what a command needs: ``stargate version`` and the client commands (``submit``, ``jobs``,
...) never load the engine, the simulator, NumPy or the server stack (times: bench/cli_startup.py).

Each import check runs in a fresh interpreter, since this one has imported everything already.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import stargate
from stargate.cli import COMMAND_MODULES, app
from stargate.cli.text import cell, visible
from stargate.domain.base import HIDDEN_CHARACTERS
from stargate.domain.base import visible as domain_visible

HEAVY = (
    "numpy",
    "stargate.engine",
    "stargate.sim",
    "stargate.traces",
    "stargate.server",
    "stargate.store",
    "stargate.executors",
    "sqlalchemy",
    "fastapi",
    "uvicorn",
)
"""Never imported by the client commands."""
LOADED_ON_USE = ("stargate.domain", "stargate.fleetfile", "yaml")
"""Imported by ``submit`` only once it runs (to validate the job file), never to start or to show help."""

CLIENT_COMMANDS = ("version", "login", "submit", "jobs", "job", "logs", "cancel", "queues", "token")

RUN = """
import json, sys
sys.argv = ["stargate", *json.loads(sys.argv[1])]
from stargate.cli import main
try:
    main()
except SystemExit:
    pass
with open({out!r}, "w") as f:
    json.dump(sorted(sys.modules), f)
"""

RESOLVE = """
import json, sys
import typer.main
import stargate.cli
group = typer.main.get_command(stargate.cli.app)
ctx = typer.Context(group)
for name in json.loads(sys.argv[1]):
    assert group.get_command(ctx, name) is not None, name
with open({out!r}, "w") as f:
    json.dump(sorted(sys.modules), f)
"""


def imported_by(code: str, argv: list[str], out: Path) -> tuple[set[str], str]:
    """The modules a fresh interpreter holds after running ``code``, and what it printed on stdout."""
    env = {**os.environ, "PYTHONPATH": str(Path(stargate.__file__).parents[1]), "COLUMNS": "100"}
    done = subprocess.run(
        [sys.executable, "-c", code.format(out=str(out)), json.dumps(argv)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.exists(), done.stderr
    return set(json.loads(out.read_text())), done.stdout


def offending(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    """Which of ``packages`` were imported (importing any module of a package imports the package)."""
    return sorted(m for m in modules if m in packages)


def test_resolving_the_client_commands_imports_nothing_heavy(tmp_path: Path) -> None:
    modules, _ = imported_by(RESOLVE, list(CLIENT_COMMANDS), tmp_path / "modules.json")
    assert offending(modules, HEAVY + LOADED_ON_USE) == []
    assert "stargate.cli.client" in modules  # the commands were really resolved


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["version"], stargate.__version__),
        (["submit", "--help"], "Validate a job file locally"),
        (["jobs", "--help"], "List jobs, newest first."),
        (["token", "create", "--help"], "Create a token"),
    ],
)
def test_client_commands_start_without_heavy_imports(argv: list[str], shown: str, tmp_path: Path) -> None:
    modules, stdout = imported_by(RUN, argv, tmp_path / "modules.json")
    assert shown in stdout
    assert offending(modules, HEAVY + LOADED_ON_USE) == []


def test_submit_validates_without_the_engine_or_the_server(tmp_path: Path) -> None:
    """Running ``submit`` loads the job file's model and YAML reader, but still neither the scheduler (nor NumPy)
    nor the server stack."""
    job = tmp_path / "job.yaml"
    job.write_text("name: x\nqueue: q\ngpus: eight\ncommand: 'true'\n")
    modules, _ = imported_by(RUN, ["submit", str(job)], tmp_path / "modules.json")
    assert "stargate.domain" in modules
    heavy = ("numpy", "stargate.engine.scheduler", "stargate.sim", "stargate.server", "stargate.store", "sqlalchemy")
    assert offending(modules, (*heavy, "fastapi", "uvicorn")) == []


def test_every_command_module_adds_exactly_its_listed_commands() -> None:
    for module in sorted(set(COMMAND_MODULES.values())):
        sub = typer.Typer()
        __import__(module, fromlist=["register"]).register(sub)
        added = set(typer.main.get_group(sub).commands)
        assert added == {name for name, owner in COMMAND_MODULES.items() if owner == module}, module


def test_help_lists_every_command_in_order() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0
    rows = [line[2:] for line in result.output.splitlines() if line.startswith("│ ") and not line[2:3].isspace()]
    names = [row.split()[0] for row in rows if not row.startswith("-")]
    assert names == ["version", *COMMAND_MODULES]


def test_a_mistyped_command_still_gets_a_suggestion() -> None:
    result = CliRunner().invoke(app, ["subm"], env={"COLUMNS": "100"})
    assert result.exit_code == 2
    assert "Did you mean 'submit'?" in result.output


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "tabs\tand\nnewlines",
        "\x1b[1A\x1b[2Kgone",
        "abc\u202edcba",
        "zero\u200bwidth",
        "emoji 🚀 and ünïcode",
        "",
    ],
)
def test_visible_is_the_domains_visible(text: str) -> None:
    assert visible(text) == domain_visible(text)
    assert cell(text) == cell(domain_visible(text))


def test_every_hidden_character_takes_the_escaping_path() -> None:
    """The CLI's fast path returns printable text as it is: the domain escapes no printable character."""
    assert not any(chr(code).isprintable() for code in HIDDEN_CHARACTERS)
    for code in HIDDEN_CHARACTERS:
        assert visible(f"a{chr(code)}b") == domain_visible(f"a{chr(code)}b") != f"a{chr(code)}b"
