"""Which Slurm command errors mean the controller did not answer (retry later) and which are refusals (the job can
never start as asked): a connection dropped mid-submit must never fail a job as unstartable."""

import pytest

from stargate.executors.slurm_commands import UNREACHABLE


@pytest.mark.parametrize(
    "stderr",
    [
        "sbatch: error: Batch job submission failed: Connection reset by peer",
        "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)",
        "squeue: error: slurm_receive_msg: Socket timed out on send/recv operation",
        "sbatch: error: Batch job submission failed: Broken pipe",
        "scontrol: error: Munge decode failed: Expired credential",
    ],
)
def test_a_dropped_or_unanswered_controller_is_an_outage(stderr: str) -> None:
    assert UNREACHABLE.search(stderr)


@pytest.mark.parametrize(
    "stderr",
    [
        "sbatch: error: invalid partition specified: nosuch",
        "sbatch: error: Batch job submission failed: Requested node configuration is not available",
        "sbatch: error: Batch job submission failed: Invalid generic resource (gres) specification",
    ],
)
def test_a_refusal_is_not_an_outage(stderr: str) -> None:
    assert not UNREACHABLE.search(stderr)
