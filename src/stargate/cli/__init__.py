"""The ``stargate`` command: one Typer app assembled from one module per command group."""

import os
import select
import sys

import typer

from stargate import __version__
from stargate.cli import client, fleet, server, simulate

app = typer.Typer(
    name="stargate",
    help="Stargate: one control plane for multi-provider AI compute.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print the installed Stargate version."""
    typer.echo(__version__)


fleet.register(app)
simulate.register(app)
server.register(app)
client.register(app)


def main() -> None:
    """Console-script entry point: run the app; an unexpected error is one line, never a traceback."""
    try:
        app()
    except SystemExit as exc:
        # Typer catches a broken pipe (EPIPE) itself and exits 1: a reader that went away is not a failure
        if exc.code == 1 and _pipe_closed():
            _quiet_stdout()
            sys.exit(0)
        raise
    except BrokenPipeError:  # the reader went away (`stargate logs J | head -1`): stop quietly, as Unix tools do
        _quiet_stdout()
        sys.exit(0)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as exc:  # last resort: the commands report their own expected errors
        if os.environ.get("STARGATE_DEBUG"):
            raise
        sys.stderr.write(f"error: internal error: {type(exc).__name__}: {exc} (set STARGATE_DEBUG=1 for details)\n")
        sys.exit(1)


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
