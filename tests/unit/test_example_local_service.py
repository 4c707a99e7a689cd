"""examples/services/local.yaml: a valid service spec whose command carries replica.py verbatim (a here-document:
jobs cannot read the project's files), with the replica's flags repeating the profile and cold start, so the program
answers as the autoscaler expects."""

import re
from pathlib import Path

from stargate.cli.servicefile import load_services_file

SERVICES = Path(__file__).parents[2] / "examples" / "services"


def test_the_local_service_runs_replica_py_as_its_profile_says() -> None:
    (spec,) = load_services_file(SERVICES / "local.yaml")
    command = spec.command or ""
    program = command.split("<<'REPLICA'\n", 1)[1].removesuffix("REPLICA")
    assert program == (SERVICES / "replica.py").read_text()
    flags = dict(re.findall(r"--([a-z-]+) ([0-9.]+)", command.split("<<", 1)[0]))
    (profile,) = spec.profiles
    assert {k: float(v) for k, v in flags.items()} == {
        "prefill-tokens-per-s": profile.prefill_tokens_per_s,
        "decode-tokens-per-s": profile.decode_tokens_per_s,
        "max-concurrent-sequences": profile.max_concurrent_sequences,
        "decode-step-s": profile.decode_step_s,
        "cold-start-s": spec.cold_start_s,
    }
