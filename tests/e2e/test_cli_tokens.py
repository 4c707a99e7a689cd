"""``stargate token list|create|revoke`` through a real server: an admin creates an expiring token, lists it (never a
secret), revokes it (refused at once, idempotent), and cannot revoke the last live admin token; a member cannot
manage tokens; no token reaches the server's log, even at debug level with the access log on."""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from e2e_support import ServerFactory, child_environment


def test_an_admin_manages_tokens_through_the_api(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server()
    server.log_level = "debug"  # the access log and every debug line, to show that no token reaches the log
    server.start()
    base = {"STARGATE_CONFIG_DIR": str(tmp_path / "cfg"), "STARGATE_URL": server.url}

    def cli(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        env = child_environment(base | {"STARGATE_TOKEN": token or server.admin_token})
        return subprocess.run([sys.executable, "-m", "stargate", *args], env=env, capture_output=True, text=True)

    made = cli("token", "create", "--role", "member", "--team", "alpha", "--name", "ci", "--expires", "1h")
    assert made.returncode == 0, made.stderr
    first = made.stdout.splitlines()[0]
    assert first.startswith("token t-") and "(member, team alpha, name ci, expires 20" in first
    secret = first.rsplit(" ", 1)[-1]
    token_id = secret.split("_")[1]
    member = httpx.get(f"{server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {secret}"})
    assert member.status_code == 200 and member.json()["name"] == "ci"

    listed = json.loads(cli("token", "list", "--json").stdout)
    mine = next(item for item in listed if item["id"] == token_id)
    assert (mine["state"], mine["role"], mine["team"]) == ("live", "member", "alpha")
    assert timedelta(minutes=59) < datetime.fromisoformat(mine["expires_at"]) - datetime.now(UTC) <= timedelta(hours=1)
    table = cli("token", "list")
    assert table.returncode == 0 and token_id in table.stdout and secret.split("_", 2)[2] not in table.stdout

    refused = cli("token", "list", token=secret)
    assert refused.returncode == 1 and refused.stderr.startswith("error: 403 forbidden: ")

    revoked = cli("token", "revoke", token_id)
    assert revoked.returncode == 0 and revoked.stdout.startswith(f"token {token_id} (ci) revoked at ")
    after = httpx.get(f"{server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {secret}"})
    assert after.status_code == 401  # at once on the server that revoked it
    assert cli("token", "revoke", token_id).stdout == revoked.stdout  # idempotent: the same time and author

    admin_id = server.admin_token.split("_")[1]
    last = cli("token", "revoke", admin_id)
    assert last.returncode == 1 and "is the last live admin token" in last.stderr
    bad = cli("token", "create", "--role", "viewer", "--team", "alpha", "--expires", "yesterday")
    assert bad.returncode == 2 and bad.stderr.startswith('error: --expires: found "yesterday"')
    server.stop()
    logged = "".join(log.read_text(errors="replace") for log in server.logs)
    assert "GET /api/v1/tokens" in logged  # the access log was on
    for token in (secret, server.admin_token):
        assert token.split("_", 2)[2] not in logged  # no secret in the server's output
