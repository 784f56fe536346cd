"""Records limitsync writes: alerts, dead letters and the replay's account lines."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from schemas.contract import AccountStatus, DisplaySource

__all__ = ["AccountLine", "AlertRecord", "DeadLetterReason", "DeadLetterRecord"]

AlertType = Literal["mismatch.opened", "mismatch.escalated", "mismatch.resolved"]
Reason = Literal[
    "REPAYMENT_NOT_POSTED", "SYNC_DELAY", "FREEZE_NOT_APPLIED", "CACHE_MISSING", "CACHE_DIVERGED"
]


class AlertRecord(BaseModel):
    """One record on the alert topic / in ``alerts.jsonl``."""

    model_config = ConfigDict(extra="forbid")

    type: AlertType
    alert_id: str
    # which displayed value drifted: "app" (what users see) or "cache" (what the cache holds);
    # absent on REPAYMENT_NOT_POSTED alerts
    source: DisplaySource | None = None
    account_id: str
    reason: Reason
    severity: Literal["critical", "major"]
    expected_available: int
    displayed_available: int | None
    drift: int | None
    opened_at: str
    detected_at: str
    sla_seconds: int
    age_seconds: int
    evidence_event_ids: list[str]
    # On an app alert of an account whose cache was observed: the cache's latest observed
    # value, and when that is the expected one, a note saying the display layer is behind.
    cache_available: int | None = None
    note: str | None = None
    payment_id: str | None = None
    # On an alert a user's limit inquiry opened or joined (a fault confirmed): that inquiry.
    inquiry_id: str | None = None
    resolved_at: str | None = None
    resolution: Literal["synced", "auto_healed", "superseded"] | None = None


# docs/contract.md, "Bad input": why a record was set aside. ``invalid``: it breaks the contract;
# ``conflict``: its event_id was seen with other content; ``internal``: processing this one
# record raised; ``future_timestamp``: stamped too far ahead of the clock (live; a replay only
# with --now); ``rescore_failed``: the scorer kept failing on a rescore request.
DeadLetterReason = Literal["invalid", "conflict", "internal", "future_timestamp", "rescore_failed"]


class DeadLetterRecord(BaseModel):
    """A rejected input record, with everything needed to fix and re-send it (at most 256 KB
    written out: ``schemas.parse.dead_letter_record``)."""

    model_config = ConfigDict(extra="forbid")

    reason: DeadLetterReason
    error: str
    # The original bytes as UTF-8 (undecodable bytes escaped), and exactly; both null for a
    # Kafka tombstone (a record whose value is null). When the original was too long, these
    # hold its first 64 KB only (``original`` may be cut shorter still: its escapes take more
    # room), and the three fields below say what the whole was.
    original: str | None
    original_b64: str | None
    topic: str | None
    partition: int | None
    offset: int | None
    event_id: str | None = None  # within the contract's ID_LEN_MAX characters, else null
    account_id: str | None = None  # within ACCOUNT_ID_LEN_MAX characters, else null
    original_truncated: bool = False
    original_length: int | None = None  # bytes of the whole original
    original_sha256: str | None = None  # hex SHA-256 of the whole original


class AccountLine(BaseModel):
    """One line of ``accounts.jsonl``: an account's state at the end of a replay."""

    model_config = ConfigDict(extra="forbid")

    account_id: str
    credit_line: int
    outstanding: int
    status: AccountStatus
    expected_available: int
    displayed_available: int | None  # the latest app observation; null if none
    cache_available: int | None  # the latest cache observation; null if none
