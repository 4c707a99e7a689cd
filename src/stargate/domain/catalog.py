"""The GPU model catalogue: per-GPU dense BF16 compute, memory and power.

Values and sources: ../shared/data/facts/stargate_facts.md, section 4.2 ("GPU specs").
"""

from typing import Annotated

from pydantic import Field

from stargate.domain.base import Model, OptionalText, Real, Unit
from stargate.domain.limits import MAX_HBM_GIB, MAX_TDP_W, MAX_TFLOPS


class GpuModel(Model):
    """One catalogue entry: a GPU model's name and the per-GPU figures placement and power checks use."""

    name: str = Field(
        description="Catalogue name used by clusters, quotas and job constraints, e.g. 'H100-SXM'.",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$",
    )
    bf16_dense_tflops: Annotated[Real, Unit("TFLOP/s")] = Field(
        gt=0, le=MAX_TFLOPS, description="BF16 dense (no sparsity) peak per GPU, TFLOP/s, at most 1,000,000."
    )
    hbm_gib: Annotated[Real, Unit("GiB")] = Field(
        gt=0, le=MAX_HBM_GIB, description="High-bandwidth memory per GPU, GiB, at most 1,048,576."
    )
    tdp_w: Annotated[Real, Unit("W")] = Field(
        gt=0, le=MAX_TDP_W, description="Thermal design power per GPU, W, at most 100,000; used for site power caps."
    )
    source: OptionalText = Field(
        default="", description="Where the figures come from (a citation); at most 10,000 characters."
    )


_FACTS = "../shared/data/facts/stargate_facts.md §4.2"

BUILTIN_GPU_MODELS: tuple[GpuModel, ...] = (
    GpuModel(name="H100-SXM", bf16_dense_tflops=989.4, hbm_gib=80, tdp_w=700, source=_FACTS),
    GpuModel(name="H200", bf16_dense_tflops=989.0, hbm_gib=141, tdp_w=700, source=_FACTS),
    GpuModel(name="B200", bf16_dense_tflops=2250.0, hbm_gib=180, tdp_w=1000, source=_FACTS),
    GpuModel(name="GB200", bf16_dense_tflops=2500.0, hbm_gib=186, tdp_w=1200, source=_FACTS),
    GpuModel(name="MI300X", bf16_dense_tflops=1307.4, hbm_gib=192, tdp_w=750, source=_FACTS),
)
"""The models every fleet knows without declaring them; a fleet file may add more under ``gpu_models``."""
