"""One simulated account: the contract's model of it, the generator's bookkeeping, and what the
cache and the app last showed."""

from __future__ import annotations

from limitsync.simulation.contract import ACTIVE


class Account:
    __slots__ = (
        "app_drift_since",
        "app_observed",
        "app_shown",
        "app_stuck_until",
        "cache",
        "cache_drift_since",
        "cache_observed",
        "cache_shown",
        "cache_version",
        "cache_written",
        "drawn",
        "expected",
        "hold_until",
        "id",
        "idx",
        "last_sync",
        "last_target",
        "line",
        "line_alloc",
        "line_version",
        "loans",
        "pace",
        "pin_until",
        "posted",
        "repaid",
        "reversed",
        "seen",
        "status",
        "status_alloc",
        "status_version",
        "unfreeze_pending",
    )

    def __init__(self, idx: int, account_id: str, pace: float) -> None:
        self.idx = idx
        self.id = account_id
        self.pace = pace  # mean gap multiplier: < 1 is a busy account
        # The contract's model, applied in log order.
        self.line = 0
        self.line_version = 0
        self.status = ACTIVE
        self.status_version = 0
        self.drawn = 0
        self.repaid = 0
        self.posted: dict[str, int] = {}
        self.reversed: set[str] = set()
        self.expected = 0
        self.seen: set[int] = {0}
        # The generator's own bookkeeping.
        self.line_alloc = 0
        self.status_alloc = 0
        self.loans: dict[str, int] = {}  # loan id -> principal not yet committed to a payment
        self.unfreeze_pending = False
        self.hold_until = 0  # no state change before this (a display fault is showing)
        self.pin_until = 0  # a prebuilt late record is pending: start no display fault
        self.last_sync = 0  # time of the latest scheduled cache sync
        self.last_target = -1
        # The cache, and what each observation source last showed.
        self.cache: int | None = None
        self.cache_version = 0
        self.cache_written = False
        self.app_observed = False
        self.app_shown: int | None = None
        self.app_drift_since = -1
        self.cache_observed = False
        self.cache_shown: int | None = None
        self.cache_drift_since = -1
        self.app_stuck_until = 0  # the app misses refreshes and shows app_shown until then

    @property
    def clean(self) -> bool:
        """Neither source in drift."""
        return self.app_drift_since < 0 and self.cache_drift_since < 0
