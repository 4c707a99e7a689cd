"""Upper bounds on every count, size and text in fleet files and job specs.

Each bound is far past anything a real operator writes (the design target is 1,000,000 GPUs in 500+ clusters), yet
small enough that every accepted fleet fits the engine's NumPy arrays: a fleet's GPU total (at most 10^8) times a
node's power or a price stays exact in int64 and finite in float64. Documented in docs/reference/fleet-file.md
("Limits") and docs/reference/job-spec.md; each field's JSON schema description states its own bound.
"""

from datetime import date

# -- fleet counts -----------------------------------------------------------------------------------------------
MAX_GPUS_PER_NODE = 1_024
"""GPUs in one node, GPUs (a GB200 NVL72 rack counts as one 72-GPU node)."""
MAX_NODES_PER_CLUSTER = 10_000_000
"""Nodes in one cluster, nodes."""
MAX_CLUSTER_GPUS = 10_000_000
"""GPUs in one cluster (GPUs per node × nodes), GPUs."""
MAX_FLEET_GPUS = 100_000_000
"""GPUs across a fleet's clusters, and the most any single GPU count (quota, contract, building) may say, GPUs."""
MAX_ENTITIES = 10_000
"""Entries in each list of a fleet (providers, sites, buildings, clusters, contracts, teams, queues), entries: 20
times the design's 500+ clusters. At the bound a fleet costs about 5 s and 150 MB to validate from YAML on one
core; 100,000 clusters took 23 s and 885 MB and kept an idle server at 85% of a core."""
MAX_SMALL_LIST = 1_000
"""Entries in a short list (GPU models, priority classes, quotas of a queue, models or ids a rule names), entries."""

# -- physical quantities ----------------------------------------------------------------------------------------
MAX_POWER_MW = 100_000.0
"""Power of one site or building, MW (100 GW; the largest campuses are a few GW)."""
MAX_FLOOR_AREA_SQ_FT = 100_000_000
"""Floor area of one building, sq ft."""
MAX_TFLOPS = 1_000_000.0
"""BF16 dense compute of one GPU, TFLOP/s."""
MAX_HBM_GIB = 1_048_576.0
"""Memory of one GPU, GiB (1 PiB)."""
MAX_TDP_W = 100_000.0
"""Thermal design power of one GPU, W."""

# -- money ------------------------------------------------------------------------------------------------------
MAX_USD = 10**14
"""Any amount of money, USD (100 trillion; the scale of the whole investment is 10^11). At most 6 decimal places."""
MAX_USD_PER_GPU_HOUR = 100_000
"""Any price per GPU-hour, USD per GPU-hour. At most 6 decimal places."""

# -- time -------------------------------------------------------------------------------------------------------
MIN_DATE = date(1970, 1, 1)
"""The earliest date or date-time accepted."""
MAX_DATE = date(2200, 12, 31)
"""The latest date or date-time accepted."""
MIN_DURATION_S = 1
"""The shortest duration in a job spec (estimated run time, checkpoint interval), s: a scheduler cycles about once
a second, so a shorter interval means nothing, and a tiny one (5e-324 s) only invites overflow."""
MAX_DURATION_S = 100 * 365 * 86_400
"""Any duration in a job spec (estimated run time, checkpoint interval), s (100 years of 365 days)."""

# -- text -------------------------------------------------------------------------------------------------------
MAX_NAME_CHARS = 200
"""A display name, region, interconnect or other one-line label, characters."""
MAX_TEXT_CHARS = 10_000
"""A free-text field (description, source citation), characters."""
MAX_IMAGE_CHARS = 1_024
"""A container image reference, characters."""

# -- job spec ---------------------------------------------------------------------------------------------------
MAX_COMMAND_BYTES = 65_536
"""A job's shell command, bytes of UTF-8 (64 KiB; Linux allows 128 KiB for one argument)."""
MAX_ENV_ENTRIES = 256
"""Environment variables in a job spec, entries."""
MAX_ENV_NAME_CHARS = 256
"""The name of one environment variable, characters."""
MAX_ENV_VALUE_BYTES = 32_768
"""The value of one environment variable, bytes of UTF-8 (32 KiB)."""
MAX_ENV_TOTAL_BYTES = 262_144
"""All of a job spec's environment as NAME=value strings, bytes of UTF-8 (256 KiB)."""
MAX_JOB_GPUS = 1_000_000
"""GPUs one job asks for, GPUs."""
