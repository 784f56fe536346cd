"""The core's one root exception."""

from __future__ import annotations

__all__ = ["CoreError", "InvariantViolation"]


class CoreError(Exception):
    """Root of everything the domain core raises."""


class InvariantViolation(CoreError):
    """A money invariant broke: continuing would corrupt balances."""
