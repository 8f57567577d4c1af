"""The event types mlc publishes, in one registry shaped like the converters' and report kinds'.

A type name follows CloudEvents' advice (reverse-DNS-like, past tense): `mlc.model.<what
happened>`. `register_event_type` refuses to replace a type unless asked, so a plugin cannot
silently change what a subscriber's filter means.
"""

from __future__ import annotations

from mlc.errors import ConflictError, UsageError

_TYPES: dict[str, str] = {}


def register_event_type(name: str, description: str, *, overwrite: bool = False) -> str:
    if name in _TYPES and not overwrite:
        raise ConflictError(f"event type {name!r} is already registered", "pass overwrite=True to replace it")
    _TYPES[name] = description
    return name


REGISTERED = register_event_type("mlc.model.registered", "a version was registered from a file or bytes")
OPTIMIZED = register_event_type("mlc.model.optimized", "an optimized version was registered by mlc optimize")
PROFILED = register_event_type("mlc.model.profiled", "a profile was recorded for a version")
DEPLOYED = register_event_type("mlc.model.deployed", "a deployment (versions and traffic shares) was recorded")
UNDEPLOYED = register_event_type("mlc.model.undeployed", "a name's active deployment was ended")
ALIAS_MOVED = register_event_type("mlc.model.alias_moved", "an alias now points at another version (or none)")
DELETED = register_event_type("mlc.model.deleted", "a version was deleted")
DRIFT_DETECTED = register_event_type("mlc.model.drift_detected", "mlc monitor found drift in a version's data")
ROLLOUT_ABORTED = register_event_type(
    "mlc.model.rollout_aborted", "mlc rollout --abort-if: a canary's guard held: traffic back to the previous split")


def event_types() -> dict[str, str]:
    """Every known type and what it means."""
    return dict(_TYPES)


def check_types(types: tuple[str, ...] | list[str]) -> list[str]:
    """The given types, each known; a short form (`registered`) is read as `mlc.model.registered`."""
    out = []
    for given in types:
        name = given if given in _TYPES else f"mlc.model.{given}"
        if name not in _TYPES:
            raise UsageError(f"no event type {given!r}", f"types: {', '.join(sorted(_TYPES))}")
        out.append(name)
    return out
