"""The one exception type users see: bad input, named field, allowed values; the CLI maps it to exit code 2."""
from __future__ import annotations


class IratError(Exception):
    """An error caused by the user's input (config, data, checkpoint). The message is one line."""

    exit_code = 2


class ConfigError(IratError):
    def __init__(self, field: str, allowed: str, got: object = None):
        self.field = field
        got_s = "" if got is None else f" (got {got!r})"
        super().__init__(f"{field}: must be {allowed}{got_s}")


class DataError(IratError):
    pass


class CheckpointError(IratError):
    pass


class TrainingDiverged(IratError):
    pass
