"""Stargate: one control plane for multi-provider AI compute.

Layers (see docs/concepts.md): ``domain`` (typed nouns) ← ``engine`` (pure decisions) ← adapters
(``fleetfile``, ``traces``, ``sim``, ``store``, ``executors``, ``server``, ``cli``).
"""

__version__ = "0.1.0"
