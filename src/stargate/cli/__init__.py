"""The ``stargate`` command: one Typer app assembled from one module per command group."""

import os
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
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as exc:  # last resort: the commands report their own expected errors
        if os.environ.get("STARGATE_DEBUG"):
            raise
        sys.stderr.write(f"error: internal error: {type(exc).__name__}: {exc} (set STARGATE_DEBUG=1 for details)\n")
        sys.exit(1)
