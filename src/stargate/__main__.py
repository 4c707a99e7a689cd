"""``python -m stargate`` runs the CLI."""

from stargate.cli import main

main()
