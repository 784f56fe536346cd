"""The contract's limits and value sets (docs/contract.md, "Envelope" and "Input events"), once.

The pydantic models (``schemas.events``) build their field constraints and literal types from
these names, and the compiled fast path (``schemas.native``, ``schemas.fastpath``) and the dead
letters' id bounds (``schemas.parse``) read the same names: a limit or a value set changes here
and nowhere else. A test (tests/test_contract.py) probes every field of every model at the
bounds its metadata states and holds the fast path's verdicts equal to pydantic's, and another
holds docs/contract.md to these values.

The value sets are the ``Literal`` types themselves, so that mypy and pydantic see them; the
frozensets the fast path tests membership in are read out of them (``get_args``). What the
models alone say (the event types, each type's fields) is read from the models:
``schemas.events.EVENT_TYPES``, ``event_type`` and ``own_fields``.

Standard library only, nothing from pydantic: a module of names. mypyc inlines ``Final``
numbers and strings into the compiled modules that use them, so this file is one they are
built against (``BUILT_AGAINST`` in limitsync/compiled.py): an edit makes the build stale.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = [
    "ACCOUNT_ID_CHARS",
    "ACCOUNT_ID_LEN_MAX",
    "ACCOUNT_ID_PATTERN",
    "CAUSES",
    "CHANNELS",
    "CLEARING_SLA_S",
    "DEDUPE_HORIZON_S",
    "DISPLAY_SOURCES",
    "ESCALATION_FACTOR",
    "ID_LEN_MAX",
    "LINE_REASONS_MAX",
    "LINE_REASON_LEN_MAX",
    "MAX_FUTURE_SKEW_S",
    "MINOR_UNITS_MAX",
    "MODEL_VERSION_LEN_MAX",
    "RESCORE_WINDOW_S",
    "REVERSAL_WINDOW_S",
    "SCHEMA_VERSION",
    "SLA_S",
    "STATUSES",
    "STATUS_REASON_LEN_MAX",
    "VERSION_MAX",
    "AccountStatus",
    "Cause",
    "Channel",
    "DisplaySource",
]

# -- the envelope ----------------------------------------------------------------------------

# Every id of the contract: event_id, and the loan_id, payment_id and reverses_event_id that
# name other records (one ``Id`` type in the models, so one bound).
ID_LEN_MAX: Final = 128
ACCOUNT_ID_LEN_MAX: Final = 64
# The characters of an account_id, as the body of a regular-expression class. The models'
# pattern is anchored for pydantic's engine (Rust regex, where ``$`` is the end of the text);
# the fast path anchors its own with ``\Z`` (Python's ``$`` also matches before a final "\n").
ACCOUNT_ID_CHARS: Final = "A-Za-z0-9_.:-"
ACCOUNT_ID_PATTERN: Final = "^[" + ACCOUNT_ID_CHARS + "]+$"
SCHEMA_VERSION: Final = 1

# -- numbers ---------------------------------------------------------------------------------

# Money in minor units (fen): ten trillion yuan; larger values are typos or attacks, and the
# bound keeps amounts within a signed 64-bit integer ("Decisions", "Money has an upper bound").
MINOR_UNITS_MAX: Final = 10**15
# Line and status versions, and a cache version: 0 .. 2^63 - 1, a signed 64-bit integer.
VERSION_MAX: Final = 2**63 - 1

# -- the fields of some types ----------------------------------------------------------------

MODEL_VERSION_LEN_MAX: Final = 128  # credit_line.changed's model_version
# credit_line.changed's reasons: at most 16 (adverse-action reasons are few), each at most 200
LINE_REASONS_MAX: Final = 16
LINE_REASON_LEN_MAX: Final = 200
STATUS_REASON_LEN_MAX: Final = 200  # account.status_changed's reason

# -- value sets ------------------------------------------------------------------------------

Channel = Literal["balance", "bank_card", "auto_debit", "transfer"]  # repayment.initiated
Cause = Literal["initial", "rescore", "policy", "manual"]  # credit_line.changed
AccountStatus = Literal["active", "frozen", "closed"]  # account.status_changed
# limit.displayed's source (absent means app); also which displayed value an alert is about
DisplaySource = Literal["app", "cache"]

# -- the defaults of the rules (docs/contract.md "Drift and alerts", "Idempotency horizon") -----

# Settings (config/settings.py) and the core's config (streams/core/engine.py) both start here.
SLA_S: Final = 60  # an open drift older than this breaches
CLEARING_SLA_S: Final = 7200  # a repayment initiated and not posted within this breaches
ESCALATION_FACTOR: Final = 10  # a breach still open after this many SLAs escalates
DEDUPE_HORIZON_S: Final = 7 * 24 * 3600
REVERSAL_WINDOW_S: Final = 90 * 24 * 3600
RESCORE_WINDOW_S: Final = 30  # rescore requests of one account coalesce over this
# "Bad input": live, a record stamped further than this after the worker's clock is refused.
MAX_FUTURE_SKEW_S: Final = 300

CHANNELS: Final[frozenset[str]] = frozenset(get_args(Channel))
CAUSES: Final[frozenset[str]] = frozenset(get_args(Cause))
STATUSES: Final[frozenset[str]] = frozenset(get_args(AccountStatus))
DISPLAY_SOURCES: Final[frozenset[str]] = frozenset(get_args(DisplaySource))
