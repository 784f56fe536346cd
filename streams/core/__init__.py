"""The pure domain core: ledger, drift and clearing deadlines, reasons, explanations.

Imports only the standard library, pydantic and ``schemas``; no I/O, clock injected. The
live workers and replay drive the same ``Engine``.
"""

from streams.core.clock import Clock, EventTimeClock, InjectedClock
from streams.core.effects import AlertRaised, CacheWrite, ChangeDisplayed, Effect, RescoreRequested
from streams.core.engine import CoreConfig, Engine, Outcome, outcome_key
from streams.core.errors import CoreError, InvariantViolation
from streams.core.explain import explain, render_text
from streams.core.state import AccountState

__all__ = [
    "AccountState",
    "AlertRaised",
    "CacheWrite",
    "ChangeDisplayed",
    "Clock",
    "CoreConfig",
    "CoreError",
    "Effect",
    "Engine",
    "EventTimeClock",
    "InjectedClock",
    "InvariantViolation",
    "Outcome",
    "RescoreRequested",
    "explain",
    "outcome_key",
    "render_text",
]
