"""Services files: one spec or a list under ``services:``, every problem located (file, line, field)."""

from pathlib import Path

import pytest

from stargate.cli.servicefile import ServiceFileError, load_services_file, loads_services
from stargate.cli.simulate_services import placeable
from stargate.fleetfile import load_fleet

CHAT = Path(__file__).parents[3] / "examples" / "services" / "chat.yaml"

ONE = """\
name: {name}
queue: product-inference
gpus_per_replica: 4
objective:
  ttft_s: 1.0
profiles:
  - gpu_model: H100-SXM
    prefill_tokens_per_s: 10000
    decode_tokens_per_s: 2000
    max_concurrent_sequences: 64
    source: a test
"""


def _listed(*names: str) -> str:
    items = []
    for name in names:
        lines = ONE.format(name=name).splitlines()
        items.append("\n".join(["  - " + lines[0], *("    " + line for line in lines[1:])]))
    return "services:\n" + "\n".join(items) + "\n"


def _problems(text: str) -> list[str]:
    with pytest.raises(ServiceFileError) as info:
        loads_services(text, "s.yaml")
    return [str(p) for p in info.value.problems]


def test_the_example_chat_service_loads_with_a_cited_profile() -> None:
    (chat,) = load_services_file(CHAT)
    assert chat.name == "chat" and chat.queue == "product-inference" and chat.priority_class == "production"
    assert chat.profiles[0].gpu_model == "H100-SXM" and "TensorRT-LLM" in chat.profiles[0].source


def test_a_list_of_services_keeps_their_order() -> None:
    assert [s.name for s in loads_services(_listed("chat", "code"))] == ["chat", "code"]


def test_two_services_of_one_name_are_refused_at_the_document() -> None:
    assert _problems(_listed("chat", "chat")) == [
        "s.yaml:1:1: (document): found two services named chat; expected distinct names"
    ]


def test_a_bad_field_of_the_second_service_is_located_at_its_line() -> None:
    text = _listed("chat", "code").replace("ttft_s: 1.0", "ttft_s: -1", 2).replace("ttft_s: -1", "ttft_s: 1.0", 1)
    (problem,) = _problems(text)
    assert problem.startswith("s.yaml:17:7: services[1].objective.ttft_s: found -1; expected a number greater than 0")


def test_a_single_spec_with_an_unknown_key_names_the_key_and_its_line() -> None:
    (problem,) = _problems(ONE.format(name="chat").replace("    source: a test", "    source: a test\n    fast: 1"))
    assert problem.startswith("s.yaml:12:5: profiles[0].fast: found unknown key 'fast'")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("", "found an empty document"),
        ("- a\n", "found a list at the top level"),
        ("services: []\n", "found an empty list"),
    ],
)
def test_a_file_that_holds_no_service_says_what_it_found(text: str, found: str) -> None:
    (problem,) = _problems(text)
    assert problem.startswith(f"s.yaml:1:1: (document): {found}")


def test_a_missing_file_is_one_problem_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ServiceFileError) as info:
        load_services_file(tmp_path / "none.yaml")
    assert str(info.value.problems[0]).endswith("found no such file; expected a services YAML file")


def test_the_example_chat_service_is_placeable_on_the_example_fleet_above_training() -> None:
    """Its queue, class and GPU model exist in examples/stargate-2025, and its class outranks the training queue's."""
    fleet = load_fleet(CHAT.parents[1] / "stargate-2025")
    (chat,) = load_services_file(CHAT)
    assert placeable(chat, fleet, "chat") == []
    value = {c.name: c.value for c in fleet.priority_classes}
    training = next(q for q in fleet.queues if q.id == "research-training")
    assert all(value[chat.priority_class or ""] > value[c] for c in training.priority_classes)
    assert placeable(chat.model_copy(update={"queue": "nowhere"}), fleet, "chat")[0].startswith(
        "chat: queue: found 'nowhere'; expected a queue of the fleet"
    )
