"""Fleet files: YAML in, a validated :class:`~stargate.domain.Fleet` out, every problem located; and back to YAML.

- :func:`load_fleet` reads one file or a directory of files; on bad input it raises :class:`FleetFileError`
  with every :class:`LocatedProblem` at once.
- :func:`dump_fleet` writes YAML that :func:`load_fleet` reads back equal.
"""

from stargate.fleetfile.dumper import dump_fleet
from stargate.fleetfile.errors import FleetFileError, LocatedProblem
from stargate.fleetfile.loader import load_fleet, loads_fleet
from stargate.fleetfile.sources import fleet_files

__all__ = ["FleetFileError", "LocatedProblem", "dump_fleet", "fleet_files", "load_fleet", "loads_fleet"]
