"""What every centralized method declares: it serves only the one-data-holder scenario."""

from __future__ import annotations

CENTRALIZED = frozenset({"centralized"})
CENTRALIZED_NOTE = "a centralized method: it needs all retained data in one place"
