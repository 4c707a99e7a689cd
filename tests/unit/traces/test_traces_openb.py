"""The Alibaba openb pod-list reader on the synthetic sample and on malformed rows."""

import csv
from collections import Counter
from pathlib import Path

import pytest
from trace_helpers import OPENB_HEADER, OPENB_PODS, bad_lines, read_text

from stargate.traces import Trace, TraceError, read_trace


@pytest.fixture(scope="module")
def sample() -> Trace:
    """The synthetic pod list, read once."""
    return read_trace(OPENB_PODS, "alibaba-openb")


def _pods() -> list[dict[str, str]]:
    """The sample's rows as dicts, read independently with csv.DictReader."""
    with OPENB_PODS.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def test_sample_counts_are_exact(sample: Trace) -> None:
    """300 pods: 42 CPU-only, 20 never scheduled, 238 jobs (161 of them on a share of one GPU); none bad."""
    assert len(_pods()) == 300
    assert len(sample.jobs) == 238
    assert sample.skipped == Counter({"cpu_only": 42, "never_scheduled": 20})
    assert sample.notes == Counter({"shared_gpu_counted_whole": 161})
    assert sample.bad_rows == []
    assert sample.start is None


def test_sample_jobs_match_the_rows_they_came_from(sample: Trace) -> None:
    """Each job: id = pod name, submit = creation, duration = deletion - scheduled, gpus = num_gpu (shared → 1)."""
    pods = {pod["name"]: pod for pod in _pods()}
    for job in sample.jobs:
        pod = pods[job.id]
        assert job.submit_s == float(pod["creation_time"])
        assert job.duration_s == float(pod["deletion_time"]) - float(pod["scheduled_time"])
        assert job.gpus == int(pod["num_gpu"])
        assert job.gpu_models == (tuple(pod["gpu_spec"].split("|")) if pod["gpu_spec"] else ())
        assert job.estimated_duration_s is None


def test_qos_maps_to_queue_priority_and_preemption(sample: Trace) -> None:
    """LS high, Guaranteed/Burstable normal, BE low and the only preemptible class."""
    classes = Counter((job.queue, job.priority_class, job.preemptible) for job in sample.jobs)
    assert classes == Counter(
        {
            ("openb-burstable", "normal", False): 72,
            ("openb-be", "low", True): 60,
            ("openb-ls", "high", False): 57,
            ("openb-guaranteed", "normal", False): 49,
        }
    )


def test_gpu_spec_becomes_the_acceptable_models(sample: Trace) -> None:
    """'A|B' → ('A', 'B'); empty → any model."""
    models = Counter(job.gpu_models for job in sample.jobs)
    assert models == Counter({(): 137, ("V100M16", "V100M32"): 46, ("P100", "T4"): 32, ("T4",): 23})
    assert Counter(job.gpus for job in sample.jobs) == Counter({1: 223, 4: 8, 2: 6, 8: 1})


def test_sample_jobs_are_sorted_by_creation(sample: Trace) -> None:
    """Jobs come out in submission order."""
    submits = [job.submit_s for job in sample.jobs]
    assert submits == sorted(submits)


def test_malformed_and_skipped_rows(tmp_path: Path) -> None:
    """Every rule: bad rows with line and column; on-purpose skips counted by reason."""
    rows = [
        "ok-1,1000,1024,1,1000,T4,LS,Running,10,50,20",  # 2 job
        "cpu,1000,1024,0,0,,LS,Running,10,50,20",  # 3 cpu_only
        "pending,1000,1024,1,1000,,BE,Pending,10,,",  # 4 never_scheduled
        "running,1000,1024,1,1000,,BE,Running,10,,20",  # 5 still_running
        "instant,1000,1024,1,1000,,BE,Running,10,20,20",  # 6 zero_duration
        "backwards,1000,1024,1,1000,,BE,Running,10,15,20",  # 7 bad: deletion before scheduling
        "early,1000,1024,1,1000,,BE,Running,30,50,20",  # 8 bad: scheduled before created
        "qos,1000,1024,1,1000,,Gold,Running,10,50,20",  # 9 bad qos
        "milli,1000,1024,2,500,,LS,Running,10,50,20",  # 10 bad: shared GPU with num_gpu 2
        "neg,1000,1024,-1,1000,,LS,Running,10,50,20",  # 11 bad num_gpu
        "ok-1,1000,1024,1,1000,,LS,Running,10,50,20",  # 12 bad: duplicate name
        ",1000,1024,1,1000,,LS,Running,10,50,20",  # 13 bad: no name
        "spec,1000,1024,1,1000,T4||P100,LS,Running,10,50,20",  # 14 bad: empty model name
        "time,1000,1024,1,1000,,LS,Running,nan,50,20",  # 15 bad creation_time
        "short,1000",  # 16 bad width
        "shared,1000,1024,1,250,,BE,Running,10,50,20",  # 17 job on a quarter GPU
    ]
    trace = read_text(tmp_path, "pods.csv", OPENB_HEADER + "\n".join(rows) + "\n", "alibaba-openb")
    assert [job.id for job in trace.jobs] == ["ok-1", "shared"]
    assert trace.jobs[1].gpus == 1
    assert trace.notes == Counter({"shared_gpu_counted_whole": 1})
    assert trace.skipped == Counter({"cpu_only": 1, "never_scheduled": 1, "still_running": 1, "zero_duration": 1})
    assert bad_lines(trace) == [7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
    messages = {bad.line: bad.message for bad in trace.bad_rows}
    assert messages[7] == "deletion_time: found '15', expected a time >= scheduled_time (20)"
    assert messages[8] == "scheduled_time: found '20', expected a time >= creation_time (30)"
    assert messages[9] == "qos: found 'Gold', expected one of LS, Guaranteed, Burstable, BE"
    assert messages[10].startswith("gpu_milli: found '500', expected 1000 when num_gpu is above 1")
    assert messages[11] == "num_gpu: found '-1', expected a whole number from 0 to 1000000"
    assert messages[12] == "name: found 'ok-1', expected a pod name not used by an earlier row"
    assert messages[15] == "creation_time: found 'nan', expected a finite number"


def test_header_order_does_not_matter_and_missing_columns_fail(tmp_path: Path) -> None:
    """Columns are read by name; a missing one fails at the header with its name."""
    text = "qos,name,num_gpu,gpu_milli,gpu_spec,creation_time,scheduled_time,deletion_time\nBE,p,1,1000,,0,1,3\n"
    trace = read_text(tmp_path, "pods.csv", text, "alibaba-openb")
    assert [(job.id, job.duration_s, job.queue) for job in trace.jobs] == [("p", 2.0, "openb-be")]
    with pytest.raises(TraceError, match=r"pods2.csv:1: header: missing columns gpu_milli, qos"):
        read_text(
            tmp_path, "pods2.csv", "name,num_gpu,gpu_spec,creation_time,scheduled_time,deletion_time\n", "alibaba-openb"
        )


def test_strict_mode_raises_on_the_first_bad_row(tmp_path: Path) -> None:
    """Skipped rows are not errors in strict mode; the first bad row is."""
    rows = ["cpu,1,1,0,0,,LS,Running,10,50,20", "bad,1,1,1,1000,,XX,Running,10,50,20"]
    with pytest.raises(TraceError) as caught:
        read_text(tmp_path, "pods.csv", OPENB_HEADER + "\n".join(rows) + "\n", "alibaba-openb", strict=True)
    assert caught.value.bad_row.line == 3
