#!/usr/bin/env bash
# The main job: set everything up, then validate and show the bundled Stargate 2025 fleet.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
stargate fleet validate examples/stargate-2025
stargate fleet show examples/stargate-2025
