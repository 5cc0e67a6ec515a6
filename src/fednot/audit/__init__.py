"""``fednot audit``: forgetting quality against many retrained models (docs/audit.md)."""

from fednot.audit.runner import Audit

__all__ = ["Audit"]
