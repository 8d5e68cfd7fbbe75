"""Component package: `spec.yaml` + `driver.py`."""
