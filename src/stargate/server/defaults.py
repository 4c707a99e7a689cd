"""Defaults of the server's settings, importable without the server stack (the CLI shows them in its help)."""

from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8642
DEFAULT_FLEET = Path("examples/stargate-2025")
DEFAULT_INTERVAL_S = 0.2
