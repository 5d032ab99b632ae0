"""DSIC: Dynamic Sample-Individualized Connector for multi-scale object detection."""

__version__ = "0.1.0"


class DsicWarning(UserWarning):
    """A warning about what a user gave (data, config, device). The ``dsic`` command prints it as one
    line, ``[dsic] warning: ...``, without the source line; library callers filter it as any warning."""
