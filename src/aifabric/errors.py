"""Exception hierarchy. The CLI turns every AifabricError into one line on stderr and exit 2."""


class AifabricError(Exception):
    """Base class for errors a user can fix by changing the input."""


class ConfigError(AifabricError, ValueError):
    """An input value, flag or scenario key is invalid; the message names it and the rule."""


class CapacityError(AifabricError):
    """A design cannot hold what was asked of it (too few ports, memory, bandwidth)."""


class SimulationError(AifabricError):
    """A simulation reached an impossible state from valid input."""
