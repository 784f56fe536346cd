"""Invalid records: a valid record made invalid in one way, written right after it.

Each is tagged ``"sim_bad": KIND`` when it is JSON at all, and none changes the model. Their
decisions are drawn from a ``random.Random`` of their own, apart from the traffic's.
"""

from __future__ import annotations

import random
import time
from typing import Any

import orjson

from limitsync.simulation.contract import DRAWDOWN, ENVELOPE_REQUIRED, MONEY_FIELD, REQUIRED_FIELDS

BAD_KINDS: frozenset[str] = frozenset(
    {
        "not_json",
        "missing_field",
        "float_amount",
        "negative_amount",
        "unknown_type",
        "bad_timestamp",
        "missing_schema_version",
        "bool_as_int",
    }
)
# Sorted: the choice among them must not depend on the set's iteration order.
_BAD_ORDER: tuple[str, ...] = tuple(sorted(BAD_KINDS))
_MONEY_KINDS = ("float_amount", "negative_amount", "bool_as_int")
_UNKNOWN_TYPES = ("loan.restructured", "repayment.refunded", "drawdown.cancelled", "limit.shown")
_NOT_JSON_LINES = (
    b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
    b"event_id=%s type=drawdown.booked principal=100000",
    b"\xef\xbb\xbf{'event_id': '%s', 'type': 'limit.displayed'}",
)


class InvalidRecords:
    """``rate``: the share of valid records an invalid one follows, decided by a draw from
    ``rng`` after each (the emitter draws)."""

    __slots__ = ("_n_bad", "_seed", "rate", "rng")

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self.rng = random.Random(f"limitsync-bad-{seed}")
        self._seed = seed
        self._n_bad = 0

    def make(self, rec: dict[str, Any], t: int) -> tuple[bytes, str]:
        """An invalid line made from ``rec`` (occurred at ``t``), and its kind."""
        kind = self.rng.choice(_BAD_ORDER)
        self._n_bad += 1
        bad_id = f"evt-{self._seed}-x{self._n_bad}"
        tpl, money = self._template(rec, kind)
        obj: dict[str, Any] = {"event_id": bad_id, "sim_bad": kind}
        obj.update((k, v) for k, v in tpl.items() if k != "event_id")
        if kind == "not_json":
            return self._not_json(obj, bad_id), kind
        _corrupt(obj, kind, money, t, self.rng)
        return orjson.dumps(obj), kind

    def _template(self, rec: dict[str, Any], kind: str) -> tuple[dict[str, Any], str | None]:
        """The fields to corrupt and the money field among them: a new drawdown when ``kind``
        corrupts an amount and ``rec`` has none."""
        tpl = {k: v for k, v in rec.items() if k != "sim_fault"}
        money = MONEY_FIELD.get(tpl["type"])
        if kind in _MONEY_KINDS and (money is None or tpl.get(money) is None):
            tpl = {k: tpl[k] for k in ("type", "account_id", "occurred_at", "schema_version")}
            tpl["type"] = DRAWDOWN
            tpl["loan_id"] = f"loan-{self._seed}-x{self._n_bad}"
            tpl["principal"] = self.rng.randint(5, 500) * 10_000
            money = "principal"
        return tpl, money

    def _not_json(self, obj: dict[str, Any], bad_id: str) -> bytes:
        """A truncated record, or something else that reached the topic (an error page...)."""
        rng = self.rng
        if rng.random() < 0.7:
            whole = orjson.dumps(obj)
            return whole[: rng.randint(len(whole) // 3, len(whole) - 2)]
        template = rng.choice(_NOT_JSON_LINES)
        return template.replace(b"%s", bad_id.encode()) if b"%s" in template else template


def _corrupt(obj: dict[str, Any], kind: str, money: str | None, t: int, rng: random.Random) -> None:
    """Make a valid record invalid in one way (see BAD_KINDS)."""
    if kind == "missing_field":
        required = ENVELOPE_REQUIRED + REQUIRED_FIELDS[obj["type"]]
        obj.pop(rng.choice(required), None)
    elif kind == "float_amount" and money is not None:
        obj[money] = obj[money] / 100  # yuan instead of fen
    elif kind == "negative_amount" and money is not None:
        obj[money] = -(obj[money] or 10_000)
    elif kind == "bool_as_int" and money is not None:
        obj[money] = True
    elif kind == "unknown_type":
        obj["type"] = rng.choice(_UNKNOWN_TYPES)
    elif kind == "bad_timestamp":
        obj["occurred_at"] = rng.choice(_bad_timestamps(t))
    elif kind == "missing_schema_version":
        del obj["schema_version"]


def _bad_timestamps(t: int) -> tuple[str | int, ...]:
    moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 1000))
    return (
        moment,  # no offset
        moment.replace("T", " "),
        moment[:8] + "32" + moment[10:] + ".000Z",  # day 32
        moment[:11] + "25" + moment[13:] + "+08:00",  # hour 25
        "yesterday at noon",
        t,  # epoch milliseconds: not a string
    )
