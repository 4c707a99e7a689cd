"""The ``stargate`` command: one Typer app assembled from one module per command group.

Each module is imported only when one of its commands is looked up (to run it, or for ``stargate --help``), so a
command imports only what it needs: ``stargate version`` nothing but Typer and this module, the client commands
(``submit``, ``jobs``, ...) the HTTP client and Rich, and the engine, the simulator, NumPy and the server stack load
only for ``simulate``, ``fleet``, ``schema``, ``up`` and ``admin``. A module may import what its commands need at
its top; a new top-level command or group is added to :data:`COMMAND_MODULES` (tests/unit/client/test_cli_startup.py
checks the table against the modules).
"""

import importlib
import os
import select
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, TypeAlias

import typer
from typer.core import TyperGroup

from stargate import __version__

COMMAND_MODULES: dict[str, str] = {
    "simulate": "stargate.cli.simulate",
    "up": "stargate.cli.server",
    "login": "stargate.cli.client",
    "submit": "stargate.cli.client",
    "jobs": "stargate.cli.client",
    "job": "stargate.cli.client",
    "logs": "stargate.cli.client",
    "cancel": "stargate.cli.client",
    "queues": "stargate.cli.client",
    "serve": "stargate.cli.services",
    "services": "stargate.cli.services",
    "service": "stargate.cli.services",
    "fleet": "stargate.cli.fleet",
    "schema": "stargate.cli.fleet",
    "admin": "stargate.cli.server",
    "contracts": "stargate.cli.money",
    "budget": "stargate.cli.money",
    "costs": "stargate.cli.money",
    "token": "stargate.cli.client",
    "procure": "stargate.cli.money",
    "plan": "stargate.cli.plan",
}
"""Every top-level command and group but ``version`` (defined here), in the order of ``stargate --help`` (Typer's:
commands, then groups), with the module whose ``register(app)`` adds it."""


_Command: TypeAlias = Any
"""A Click command as Typer builds it (Typer 0.29 and later bring their own copy of Click, earlier ones use Click)."""


class _LazyCommands(MutableMapping[str, _Command]):
    """The root's commands by name, in help order; looking one up imports its module on first use."""

    def __init__(self, loaded: Mapping[str, _Command]) -> None:
        self._loaded = dict(loaded)
        self._first = list(loaded)  # the root app's own commands (version) come first, as they are registered first

    def __getitem__(self, name: str) -> _Command:
        if name not in self._loaded and name in COMMAND_MODULES:
            self._loaded.update(_load(COMMAND_MODULES[name]))
        return self._loaded[name]

    def __setitem__(self, name: str, command: _Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        names = dict.fromkeys([*self._first, *COMMAND_MODULES, *self._loaded])
        return iter(names)

    def __len__(self) -> int:
        return len(COMMAND_MODULES.keys() | self._loaded.keys())

    def __contains__(self, name: object) -> bool:
        return name in COMMAND_MODULES or name in self._loaded


def _load(module: str) -> dict[str, _Command]:
    """The click commands that ``module``'s ``register(app)`` adds (imports the module)."""
    sub = typer.Typer(add_completion=False)
    importlib.import_module(module).register(sub)
    return dict(typer.main.get_group(sub).commands)


class _LazyGroup(TyperGroup):
    """The root group: its commands are a :class:`_LazyCommands`, listed without importing their modules."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _LazyCommands(self.commands)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)


app = typer.Typer(
    name="stargate",
    help="Stargate: one control plane for multi-provider AI compute.",
    cls=_LazyGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    # A callback makes Typer build a group even though only ``version`` is registered here (the rest are lazy).
    pass


@app.command()
def version() -> None:
    """Print the installed Stargate version."""
    typer.echo(__version__)


def main() -> None:
    """Console-script entry point: run the app; an unexpected error is one line, never a traceback."""
    try:
        app()
    except SystemExit as exc:
        # Typer catches a broken pipe (EPIPE) itself and exits 1, having wrapped stdout to keep it quiet
        if exc.code == 1 and (_pacified(sys.stdout) or _pipe_closed()):
            _quiet_stdout()
            sys.exit(EXIT_BROKEN_PIPE)
        raise
    except BrokenPipeError:  # the reader went away (`stargate logs J | head -1`): stop quietly, as Unix tools do
        _quiet_stdout()
        sys.exit(EXIT_BROKEN_PIPE)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as exc:  # last resort: the commands report their own expected errors
        if os.environ.get("STARGATE_DEBUG"):
            raise
        sys.stderr.write(f"error: internal error: {type(exc).__name__}: {exc} (set STARGATE_DEBUG=1 for details)\n")
        sys.exit(1)


EXIT_BROKEN_PIPE = 141
"""Exit status when the reader of stdout went away before the command finished (`stargate fleet validate bad.yaml
--json | head -1`): 128 + SIGPIPE, as a shell reports a Unix tool that SIGPIPE stopped. The command did not finish,
so its own status is unknown; 0 would tell a `set -o pipefail` CI step that a failing command succeeded."""


def _pacified(stream: object) -> bool:
    """Whether ``stream`` is Click's wrapper that Typer puts on stdout after a broken pipe (from Click or Typer's own
    copy of it)."""
    return type(stream).__name__ == "PacifyFlushWrapper"


def _pipe_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (Click and Typer then exit 1 after a broken pipe)."""
    try:
        poller = select.poll()
        poller.register(sys.__stdout__.fileno() if sys.__stdout__ is not None else 1, select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that Python's flush at exit does not fail again on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
