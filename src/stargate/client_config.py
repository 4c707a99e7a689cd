"""The client's configuration: where the server is and which token to use, saved by ``stargate login`` (mode 0600)
and laid over by ``STARGATE_URL`` / ``STARGATE_TOKEN``; every value checked before any request is sent."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8642"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where the server is and the token to use."""

    url: str = DEFAULT_URL
    token: str | None = None


def config_path(env: Mapping[str, str]) -> Path:
    """``$STARGATE_CONFIG_DIR/config.json``, default ``~/.config/stargate/config.json``."""
    base = env.get("STARGATE_CONFIG_DIR")
    return (Path(base) if base else Path.home() / ".config" / "stargate") / "config.json"


def load_config(env: Mapping[str, str]) -> ClientConfig:
    """The saved config with ``STARGATE_URL`` / ``STARGATE_TOKEN`` laid over it; defaults when none is saved.

    A config file that cannot be read, is not valid JSON or not an object of a URL and a token raises ValueError
    naming the file; so does a ``STARGATE_URL`` that is not an http(s) URL (naming the variable).
    """
    path = config_path(env)
    saved = _read_saved(path) if path.exists() else {}
    env_url = env.get("STARGATE_URL")
    if env_url and (problem := url_problem(env_url)):
        raise ValueError(f"STARGATE_URL: {problem}")
    url = env_url or saved.get("url") or DEFAULT_URL
    env_token = env.get("STARGATE_TOKEN")
    if env_token and (problem := token_problem(env_token)):
        raise ValueError(f"STARGATE_TOKEN: {problem}")
    token = env_token or saved.get("token") or None
    return ClientConfig(url=str(url), token=token)


MAX_TOKEN_CHARS = 1024
"""Longest token the client sends (server tokens are about 80 characters)."""


def token_problem(token: str) -> str | None:
    """Why ``token`` cannot be a bearer token (1 to 1,024 visible ASCII characters, no space); None when it can.

    Checked before any request: an HTTP header cannot carry other characters (a newline would end it, a non-ASCII
    character cannot be encoded)."""
    if not 1 <= len(token) <= MAX_TOKEN_CHARS:
        return f"found {len(token):,} characters; expected a token of 1 to {MAX_TOKEN_CHARS:,} visible ASCII characters"
    for position, char in enumerate(token):
        if not "!" <= char <= "~":
            return (
                f"found {char!a} at character {position + 1}; expected visible ASCII characters only "
                "(no space, newline or non-ASCII character: copy the token again)"
            )
    return None


def url_problem(url: object) -> str | None:
    """Why ``url`` is not a server address (an http:// or https:// URL with a host); None when it is one."""
    if isinstance(url, str):
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.netloc:
            return None
    return f"found {json.dumps(url)}; expected an http:// or https:// URL such as {DEFAULT_URL}"


def _read_saved(path: Path) -> dict[str, Any]:
    """The saved config object; ValueError naming ``path`` when it is unreadable or not a config."""
    again = "run `stargate login` again"
    try:
        saved = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror or exc}); {again}") from None
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); {again}") from exc
    if not isinstance(saved, dict):
        raise ValueError(f"{path}: found a JSON {type(saved).__name__}; expected an object with url and token; {again}")
    if saved.get("url") is not None and (problem := url_problem(saved["url"])):
        raise ValueError(f"{path}: url: {problem}; {again}")
    if saved.get("token") is not None and not isinstance(saved["token"], str):
        raise ValueError(f"{path}: token: found {json.dumps(saved['token'])}; expected a string; {again}")
    if saved.get("token") and (problem := token_problem(saved["token"])):
        raise ValueError(f"{path}: token: {problem}; {again}")
    return saved


def save_config(config: ClientConfig, env: Mapping[str, str]) -> Path:
    """Write the config atomically with mode 0600 (it holds a secret); the file's path."""
    path = config_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": config.url, "token": config.token}, handle, indent=2)
        handle.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path
