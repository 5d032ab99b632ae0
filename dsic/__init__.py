"""DSIC: Dynamic Sample-Individualized Connector for multi-scale object detection."""

__version__ = "0.1.0"


class DsicWarning(UserWarning):
    """A warning about what a user gave (data, config, device). The ``dsic`` command prints it as one
    line, ``[dsic] warning: ...``, without the source line; library callers filter it as any warning."""


class ConfigError(ValueError):
    """A config file or override is malformed; the message names the file (or the override) and the
    key. ``problems``: each problem found (several in one error: all are reported at once)."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or [message]
