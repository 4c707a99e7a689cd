"""Shared pydantic configuration and exact quantities (money, power) for the domain models."""

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

USD = Annotated[Decimal, Field(ge=0, max_digits=20, decimal_places=6)]
"""An exact, non-negative amount of US dollars (never a float)."""

USDPerGpuHour = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=6)]
"""An exact price in US dollars per GPU-hour."""


class Model(BaseModel):
    """Base of every domain model: immutable, strict about unknown fields, documented field by field."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        str_strip_whitespace=True,
        validate_default=True,
        use_attribute_docstrings=False,
    )
