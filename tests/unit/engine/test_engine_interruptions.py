"""The engine's rule for a run the infrastructure ended: hand-computed progress kept, and the bound."""

import pytest

from stargate.engine.interruptions import after_interruption
from stargate.engine.policies import FifoPolicy, get_policy


def test_an_interrupted_job_keeps_its_last_checkpoint_less_the_restart_cost() -> None:
    policy = get_policy("gittins")  # restart cost 60 s
    fate = after_interruption(policy, progress_s=500.0, ran_s=250.0, checkpoint_interval_s=100.0, before=0)
    assert (fate.requeue, fate.progress_s, fate.interruptions) == (True, 500.0 + 200.0 - 60.0, 1)


def test_without_a_stated_interval_the_policy_default_counts() -> None:
    policy = FifoPolicy(default_checkpoint_interval_s=1_000.0)
    assert after_interruption(policy, 0.0, 2_500.0, None, 0).progress_s == 2_000.0
    assert after_interruption(policy, 0.0, 999.0, None, 0).progress_s == 0.0


def test_a_run_stopped_before_its_first_checkpoint_owes_the_restart() -> None:
    fate = after_interruption(get_policy("las"), progress_s=0.0, ran_s=30.0, checkpoint_interval_s=100.0, before=1)
    assert fate.progress_s == -60.0 and fate.requeue


@pytest.mark.parametrize(("limit", "before", "requeue"), [(3, 0, True), (3, 2, True), (3, 3, False), (0, 0, False)])
def test_past_max_interruptions_the_job_is_not_requeued(limit: int, before: int, requeue: bool) -> None:
    fate = after_interruption(FifoPolicy(max_interruptions=limit), 0.0, 10.0, 5.0, before)
    assert fate.requeue is requeue and fate.interruptions == before + 1


def test_max_interruptions_is_checked_like_every_setting() -> None:
    with pytest.raises(ValueError, match="max_interruptions"):
        FifoPolicy(max_interruptions=-1).validate()
