"""The machine-readable copy of the contract: a JSON Schema per record."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, TypeAdapter

from schemas import events, records

__all__ = ["write_json_schemas"]

# Each input event under its contract type, then what limitsync writes.
_MODELS: dict[str, type[BaseModel]] = {
    **{events.event_type(model): model for model in events.EVENT_MODELS},
    "alert": records.AlertRecord,
    "dead_letter": records.DeadLetterRecord,
    "account_line": records.AccountLine,
}


def write_json_schemas(out_dir: Path) -> list[Path]:
    """One file per record plus ``event.schema.json`` (the union of input events)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in _MODELS.items():
        path = out_dir / f"{name}.schema.json"
        path.write_text(json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n")
        written.append(path)
    union = TypeAdapter(events.Event).json_schema()
    path = out_dir / "event.schema.json"
    path.write_text(json.dumps(union, indent=2, sort_keys=True) + "\n")
    written.append(path)
    return written
