"""Osiris components: one folder per component with its `spec.yaml` and `driver.py`."""

__version__ = "0.1.0"
