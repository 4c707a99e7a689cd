"""The fleet-file reference: its YAML examples, one file per block, form a valid fleet directory."""

import re
from pathlib import Path

from stargate.domain import Fleet
from stargate.fleetfile import load_fleet

DOC = Path("docs/reference/fleet-file.md")


def test_reference_examples_form_a_valid_fleet(tmp_path: Path) -> None:
    """Every ```yaml block of the reference is a file of one valid fleet, with one example per noun."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    for i, block in enumerate(blocks):
        (tmp_path / f"{i:02d}.yaml").write_text(block, encoding="utf-8")
    fleet = load_fleet(tmp_path)
    nouns = ("gpu_models", "providers", "sites", "buildings", "clusters", "contracts", "priority_classes", "teams")
    assert all(getattr(fleet, noun) for noun in (*nouns, "queues")) and fleet.budget is not None
    assert fleet.contracts[0].right_of_first_refusal is not None and fleet.contracts[0].exclusivity is not None
    assert fleet.scheduling.policy == "stargate" and fleet.scheduling.settings == {
        "runtime_weight": 2,
        "burst_after_s": 3600,
    }


def test_reference_documents_every_top_level_key() -> None:
    """Each top-level key of a fleet has a row in the reference."""
    text = DOC.read_text(encoding="utf-8")
    assert all(f"| `{key}` |" in text for key in Fleet.model_fields)
