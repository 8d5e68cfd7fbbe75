"""Which DECIMAL/NUMERIC columns ConnectorX carries exactly (no ConnectorX import: writers use this too)."""

from __future__ import annotations

CONNECTORX_INTEGER_DIGITS = 18
CONNECTORX_SCALE = 10
"""ConnectorX rescales every DECIMAL/NUMERIC to scale 10 inside a 28-digit decimal: exact only up to 18 digits
before the point and 10 after it. Wider columns must travel as text."""


def decimal_is_exact(precision: int, scale: int) -> bool:
    return 0 <= scale <= CONNECTORX_SCALE and precision - scale <= CONNECTORX_INTEGER_DIGITS
