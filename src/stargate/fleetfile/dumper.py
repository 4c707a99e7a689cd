"""Writing a fleet back to YAML that :func:`stargate.fleetfile.load_fleet` reads back equal.

Defaults are left out; dates are ISO 8601; money (Decimal) is written as a plain YAML number with every digit,
which the loader reads back exactly (it keeps the text of YAML floats), so no amount is ever rounded.
"""

from decimal import Decimal
from enum import Enum
from typing import Any

import yaml

from stargate.domain.fleet import Fleet
from stargate.fleetfile.yamldoc import LOADER_RESOLVERS


def dump_fleet(fleet: Fleet) -> str:
    """The fleet as YAML text, keys in model order, defaults left out."""
    data = _plain(fleet.model_dump(mode="python", exclude_defaults=True))
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120, default_flow_style=False)


class _Dumper(yaml.SafeDumper):
    """SafeDumper without anchors and aliases: a value used twice (the same date) is written twice."""

    def ignore_aliases(self, data: Any) -> bool:
        """Never write an alias."""
        return True


def _plain(value: Any) -> Any:
    """Turn model_dump output into types a safe YAML dumper writes and our loader reads back unchanged."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT_INT:
        return int(value)  # 1200 rather than 1200.0; reads back as the same float
    return value  # dates are written unquoted as YYYY-MM-DD


_EXACT_INT = 2**53


def _decimal(value: Decimal) -> int | Decimal:
    return int(value) if value == value.to_integral_value() else value


def _represent_decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.ScalarNode:
    """A decimal as a plain YAML number with all its digits (the loader reads the digits back exactly)."""
    return dumper.represent_scalar("tag:yaml.org,2002:float", format(value.normalize(), "f"))


_Dumper.add_representer(Decimal, _represent_decimal)

# A string is written plain only when neither YAML 1.1 nor the loader's stricter schema reads it as something else
# ('0E0' is text to YAML 1.1 but a float to the loader; 'yes' the reverse): quoted otherwise.
_Dumper.yaml_implicit_resolvers = {
    first: list(resolvers) for first, resolvers in yaml.SafeDumper.yaml_implicit_resolvers.items()
}
for _first, _resolvers in LOADER_RESOLVERS.items():
    _Dumper.yaml_implicit_resolvers.setdefault(_first, []).extend(_resolvers)
