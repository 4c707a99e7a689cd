"""The Slurm executor's job accounts in the fleet file: ``user`` and ``team_users`` load as given, and every bad name
is one located problem (file, line, column, path, found, expected)."""

from pathlib import Path

import pytest

from stargate.domain import SlurmExecutorConfig
from stargate.fleetfile import FleetFileError, LocatedProblem, load_fleet, loads_fleet

HEAD = "name: t\nexecutors:\n"
ACCOUNT = "a Unix account name (1 to 32 characters: letters, digits, '.', '_' or '-', starting with a letter or '_')"
TEAM = "a team id (1–63 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit)"


def test_user_and_team_users_load_and_default_to_none() -> None:
    teams = "teams:\n  - {id: alpha, name: Alpha}\n  - {id: beta, name: Beta}\n"
    fleet = loads_fleet(
        teams + HEAD + "  - {id: s, kind: slurm, user: stargate-jobs, team_users: {alpha: sg_alpha, beta: Beta.Jobs}}\n"
        "  - {id: t, kind: slurm}\n"
    )
    given, default = fleet.executors
    assert isinstance(given, SlurmExecutorConfig) and isinstance(default, SlurmExecutorConfig)
    assert (given.user, given.team_users) == ("stargate-jobs", {"alpha": "sg_alpha", "beta": "Beta.Jobs"})
    assert (default.user, default.team_users) == (None, {})


CASES = {
    "a name starting with a digit (sbatch --uid would read a uid)": (
        "  - {id: s, kind: slurm, user: 1000}\n", 26, "executors[0].user", "1000", "a string, or null",
    ),
    "a quoted number": ("  - {id: s, kind: slurm, user: '1000'}\n", 26, "executors[0].user", "'1000'", ACCOUNT),
    "a name starting with '-' (an option to sbatch)": (
        "  - {id: s, kind: slurm, user: '-x'}\n", 26, "executors[0].user", "'-x'", ACCOUNT,
    ),
    "a name with a space": ("  - {id: s, kind: slurm, user: 'a b'}\n", 26, "executors[0].user", "'a b'", ACCOUNT),
    "a name longer than 32 characters": (
        f"  - {{id: s, kind: slurm, user: {'a' * 33}}}\n", 26, "executors[0].user", f"'{'a' * 33}'", ACCOUNT,
    ),
    "a bad account of a team": (
        "  - {id: s, kind: slurm, team_users: {alpha: 'x;rm'}}\n", 39, "executors[0].team_users.alpha", "'x;rm'",
        ACCOUNT,
    ),
    "a team that is no team id": (
        "  - {id: s, kind: slurm, team_users: {Alpha: x}}\n", 39, "executors[0].team_users.Alpha", "the team 'Alpha'",
        TEAM,
    ),
    "team_users not a mapping": (
        "  - {id: s, kind: slurm, team_users: [x]}\n", 26, "executors[0].team_users", "a list",
        "a mapping of team ids to Unix account names",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_a_bad_account_is_one_located_problem(tmp_path: Path, case: tuple[str, int, str, str, str]) -> None:
    text, column, where, found, expected = case
    path = tmp_path / "fleet.yaml"
    path.write_text(HEAD + text, encoding="utf-8")
    with pytest.raises(FleetFileError) as info:
        load_fleet(path)
    assert info.value.problems == [LocatedProblem(str(path), 3, column, where, found, expected)]


def test_every_bad_team_of_one_executor_is_reported() -> None:
    with pytest.raises(FleetFileError) as info:
        loads_fleet(HEAD + "  - {id: s, kind: slurm, team_users: {a: ok, b: 'b b', c: '9c'}}\n")
    assert [p.path for p in info.value.problems] == ["executors[0].team_users.b", "executors[0].team_users.c"]


def test_team_users_must_name_teams_of_the_fleet() -> None:
    text = (
        "name: t\nteams:\n  - {id: research, name: Research}\nexecutors:\n"
        "  - {id: s, kind: slurm, user: nobody, team_users: {research: nobody, reserch: nobody}}\n"
    )
    with pytest.raises(FleetFileError) as caught:
        loads_fleet(text, "fleet.yaml")
    (problem,) = caught.value.problems
    assert (problem.line, problem.path) == (5, "executors[0].team_users.reserch"), problem
    assert "the id of a team (research)" in problem.expected, problem
