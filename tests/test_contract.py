"""The contract is written once: the fast path refuses exactly what the models refuse.

``schemas.contract`` holds the limits and value sets; the pydantic models are built from them
and the compiled fast path (``schemas.native`` builders, ``schemas.fastpath``) checks them.
What is still code on both sides is a check per field, so these tests read every field's
rules out of the models' metadata (lengths, bounds, pattern, literals, optional or not),
make the values on and just past each bound, and hold the fast path's verdict on each equal
to pydantic's: a field or a limit changed on one side only fails here, whichever side.
``occurred_at`` is left to tests/test_fastpath.py, which probes its bounds at every offset.

And the prose copy: docs/contract.md states the same limits, value sets, types and fields.
"""

from __future__ import annotations

import ast
import copy
import re
import types
import typing
from pathlib import Path
from typing import Any, get_args, get_origin

import annotated_types as at
import pytest
from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from test_fastpath import agrees_with_pydantic
from test_parse import VALID

from limitsync import compiled
from schemas import contract, events
from schemas.fastpath import fast_event
from schemas.timefmt import (
    OCCURRED_BOUNDS_TEXT,
    OCCURRED_MAX_US,
    OCCURRED_MIN_US,
    parse_rfc3339,
    to_us,
)

ROOT = Path(__file__).resolve().parent.parent
_ADAPTER: TypeAdapter[events.Event] = TypeAdapter(events.Event)
ABSENT = object()  # a probe that removes the field


def _rules(annotation: Any, metadata: list[Any]) -> dict[str, Any]:
    """A field's type and constraints, from its annotation and pydantic's metadata: ``base``
    (int, str, list, a Literal's values, or "custom" for a PlainValidator), ``optional``,
    ``ge``/``le``/``min_length``/``max_length``/``pattern``, and ``item`` for a list."""
    rules: dict[str, Any] = {"optional": False}
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        rules["optional"] = len(args) < len(get_args(annotation))
        annotation = args[0] if len(args) == 1 else annotation
    if get_origin(annotation) is typing.Annotated:
        annotation, *more = get_args(annotation)
        metadata = [*metadata, *more]
    for item in metadata:
        _read_constraint(item, rules)
    if "custom" in rules:
        rules["base"] = "custom"
    elif get_origin(annotation) is typing.Literal:
        rules["base"] = get_args(annotation)
    elif get_origin(annotation) is list:
        rules["base"] = list
        rules["item"] = _rules(get_args(annotation)[0], [])
    else:
        rules["base"] = annotation
    return rules


def _read_constraint(item: Any, rules: dict[str, Any]) -> None:
    if isinstance(item, FieldInfo):
        for inner in item.metadata:
            _read_constraint(inner, rules)
    elif isinstance(item, at.Ge):
        rules["ge"] = item.ge
    elif isinstance(item, at.Le):
        rules["le"] = item.le
    elif isinstance(item, at.MinLen):
        rules["min_length"] = item.min_length
    elif isinstance(item, at.MaxLen):
        rules["max_length"] = item.max_length
    elif getattr(item, "pattern", None) is not None:
        rules["pattern"] = item.pattern
    elif type(item).__name__ == "PlainValidator":
        rules["custom"] = True


def _probes(rules: dict[str, Any]) -> list[Any]:
    """Values on, inside and just past each of the rules, and of the wrong JSON types."""
    base = rules["base"]
    found: list[Any] = [None, ABSENT, True, [1], {"a": 1}]
    if isinstance(base, tuple):  # a Literal's values
        found += [*base, "", *(v.upper() for v in base), *(v + " " for v in base), 1]
    elif base is int:
        low, high = rules.get("ge", -(2**70)), rules.get("le", 2**70)
        found += [low, high, low - 1, high + 1, (low + high) // 2, float(low), str(low)]
    elif base is str:
        found += _string_probes(rules)
    elif base is list:
        item = _string_probes(rules["item"])
        longest = rules["max_length"]
        found += [[], [item[0]] * longest, [item[0]] * (longest + 1), item[1:], "text"]
    elif base == "custom":  # the score: any finite JSON number
        found += [0, -1, 642.7, -12.25, 2**70, float("inf"), float("nan"), "642"]
    else:
        raise AssertionError(f"no probes for {base!r}: teach this test the new field type")
    return found


def _string_probes(rules: dict[str, Any]) -> list[Any]:
    """The allowed strings at each length bound first, then the refused ones."""
    pattern = rules.get("pattern")
    # "\n": ``$`` in Python's regex matches before a final newline, not in pydantic's
    candidates = "aZ09_.:-/ é\n"
    allowed = [c for c in candidates if pattern is None or re.fullmatch(pattern, c)]
    refused = [c for c in candidates if c not in allowed]
    shortest, longest = rules.get("min_length", 0), rules["max_length"]
    found: list[Any] = [allowed[0] * max(shortest, 1), allowed[0] * longest]
    found += ["".join(allowed), allowed[0] * (longest + 1), 7]
    if shortest:
        found.append("")
    found += [allowed[0] + c for c in refused]
    return found


def _cases() -> list[tuple[str, str, Any]]:
    """Every field of every type; the envelope's (the same checks for all) on the first."""
    cases = []
    for model in events.EVENT_MODELS:
        kind = events.event_type(model)
        probed = set(model.model_fields) if model is events.EVENT_MODELS[0] else {
            "type", *events.own_fields(model)
        }
        for name, field in model.model_fields.items():
            if name == "occurred_at" or name not in probed:
                continue
            rules = _rules(field.annotation, list(field.metadata))
            cases += [(kind, name, value) for value in _probes(rules)]
    return cases


def _pydantic_accepts(record: dict[str, Any]) -> bool:
    try:
        _ADAPTER.validate_python(copy.deepcopy(record))
    except ValidationError:
        return False
    return True


def _shown(value: Any) -> str:
    """A test id's value, long ones shortened: ``'a'*129``, ``['r']*17``."""
    if value is ABSENT:
        return "absent"
    if isinstance(value, str | list) and len(value) > 8 and len(set(value)) == 1:
        return f"{value[:1]!r}*{len(value)}"
    return repr(value)


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    _cases(),
    ids=[f"{kind}-{field}-{_shown(value)}" for kind, field, value in _cases()],
)
def test_the_fast_path_refuses_exactly_what_the_model_refuses(
    kind: str, field: str, value: Any
) -> None:
    record = copy.deepcopy(VALID[kind])
    if value is ABSENT:
        record.pop(field, None)
    else:
        record[field] = value
    assert (fast_event(copy.deepcopy(record)) is not None) is _pydantic_accepts(record), record
    agrees_with_pydantic(record)


def test_the_probes_reach_every_bound_the_metadata_states() -> None:
    """The probes accept and refuse something for every field: they test the rules, not only
    the wrong JSON types."""
    by_field: dict[tuple[str, str], set[bool]] = {}
    for kind, field, value in _cases():
        record = {k: v for k, v in VALID[kind].items() if k != field}
        if value is not ABSENT:
            record[field] = value
        by_field.setdefault((kind, field), set()).add(_pydantic_accepts(record))
    assert {k: v for k, v in by_field.items() if v != {True, False}} == {}


def test_the_value_sets_are_the_models_literals() -> None:
    fields = {
        contract.CHANNELS: events.RepaymentInitiated.model_fields["channel"],
        contract.CAUSES: events.CreditLineChanged.model_fields["cause"],
        contract.STATUSES: events.AccountStatusChanged.model_fields["status"],
        contract.DISPLAY_SOURCES: events.LimitDisplayed.model_fields["source"],
    }
    for values, field in fields.items():
        assert set(_rules(field.annotation, [])["base"]) == values


def test_the_event_types_are_read_from_the_models() -> None:
    assert sorted(events.EVENT_TYPES) == sorted(VALID)
    for model in events.EVENT_MODELS:
        assert isinstance(_ADAPTER.validate_python(VALID[events.event_type(model)]), model)


def test_the_bounds_text_of_occurred_at_is_its_bounds() -> None:
    first, last = OCCURRED_BOUNDS_TEXT.split(" .. ")
    assert (to_us(parse_rfc3339(first)), to_us(parse_rfc3339(last))) == (
        OCCURRED_MIN_US,
        OCCURRED_MAX_US,
    )


# -- the prose copy --------------------------------------------------------------------------


def _contract_page() -> str:
    return (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")


def _listed(values: tuple[str, ...]) -> str:
    return ", ".join(f"`{v}`" for v in values)


def test_docs_state_the_contracts_limits_and_value_sets() -> None:
    page = " ".join(_contract_page().split())  # a sentence may wrap anywhere
    money_exponent = len(str(contract.MINOR_UNITS_MAX)) - 1
    version_bits = contract.VERSION_MAX.bit_length()
    # the page writes them as powers: 10^15 and 2^63 - 1
    assert (10**money_exponent, 2**version_bits - 1) == (
        contract.MINOR_UNITS_MAX,
        contract.VERSION_MAX,
    )
    stated = [
        f"| `event_id` | string, 1..{contract.ID_LEN_MAX} characters |",
        f"| `account_id` | string, 1..{contract.ACCOUNT_ID_LEN_MAX} characters of "
        f"`[{contract.ACCOUNT_ID_CHARS}]` |",
        f"its UTC time must lie in {OCCURRED_BOUNDS_TEXT}",
        f"| `schema_version` | integer | `{contract.SCHEMA_VERSION}`;",
        f"`0 <= amount <= 10^{money_exponent}`",
        f"Versions are integers from 0 to 2^{version_bits} - 1.",
        f"`channel` ({_listed(get_args(contract.Channel))})",
        f"`cause` ({_listed(get_args(contract.Cause))})",
        f"`status` ({_listed(get_args(contract.AccountStatus))})",
        "optional `source` (" + " or ".join(f"`{v}`" for v in get_args(contract.DisplaySource)),
        f"optional `model_version` (string, at most {contract.MODEL_VERSION_LEN_MAX} characters)",
        f"`reasons` (at most {contract.LINE_REASONS_MAX} strings of at most "
        f"{contract.LINE_REASON_LEN_MAX} characters)",
        f"optional `reason` (string, at most {contract.STATUS_REASON_LEN_MAX} characters)",
    ]
    assert [s for s in stated if s not in page] == []


@pytest.mark.parametrize("model", events.EVENT_MODELS, ids=events.event_type)
def test_docs_list_each_type_with_its_fields(model: type[Any]) -> None:
    """The "Input events" table: the type, then its fields beyond the envelope."""
    kind = re.escape(events.event_type(model))
    row = re.search(rf"^\| `{kind}` \| ([^|]*) \|", _contract_page(), re.M)
    assert row is not None
    named = re.findall(r"`([a-z_]+)`", row.group(1))
    assert [f for f in events.own_fields(model) if f not in named] == []


# -- the build -------------------------------------------------------------------------------


def test_what_the_compiled_schemas_import_is_compiled_or_built_against() -> None:
    """mypyc inlines another module's Final numbers (``ID_LEN_MAX``) into the compiled code:
    an edit to ``schemas.contract`` must make the build stale, like one to a hot module."""
    known = {*compiled.HOT_MODULES, *compiled.BUILT_AGAINST, "schemas"}
    imported: set[str] = set()
    for module in compiled.HOT_MODULES:
        if module.startswith("schemas."):
            tree = ast.parse(compiled.source_path(module).read_text(encoding="utf-8"))
            imported |= {name for node in ast.walk(tree) for name in _schemas_modules(node)}
    assert imported - known == set()


def _schemas_modules(node: ast.AST) -> list[str]:
    """The modules of ``schemas`` an import statement names (``from schemas import x``: x
    when it is a module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "schemas"]
    if not isinstance(node, ast.ImportFrom) or (node.module or "").split(".")[0] != "schemas":
        return []
    inner = [f"{node.module}.{a.name}" for a in node.names]
    return [node.module or ""] + [m for m in inner if compiled.source_path(m).is_file()]
