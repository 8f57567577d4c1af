"""Versioned model store; see _registry.Registry for the consistency rules."""

from mlc.registry._refs import Ref, parse_ref
from mlc.registry._registry import ModelVersion, Registry

__all__ = ["ModelVersion", "Ref", "Registry", "parse_ref"]
