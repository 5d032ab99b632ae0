"""DSIC: Dynamic Sample-Individualized Connector for multi-scale object detection."""

__version__ = "0.1.0"
