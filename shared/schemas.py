"""Export the v1 contracts as JSON Schema (`shared/schemas/v1.json`).

A contract test fails when the file and the models disagree; regenerate it with
`switchboard schemas export` and review the diff like any API change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from shared.contracts import DeadLetter, InboundMessage, OpsEvent, Reply

SCHEMA_FILE = Path(__file__).parent / "schemas" / "v1.json"


def build_schemas() -> dict[str, Any]:
    """JSON Schemas of every v1 event, by name."""
    return {
        "InboundMessage": InboundMessage.model_json_schema(),
        "Reply": Reply.model_json_schema(),
        "OpsEvent": TypeAdapter(OpsEvent).json_schema(),
        "DeadLetter": DeadLetter.model_json_schema(),
    }


def render() -> str:
    """The schema file's exact text."""
    return json.dumps(build_schemas(), indent=2, sort_keys=True) + "\n"


def export(path: Path = SCHEMA_FILE) -> Path:
    """Write the schema file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    return path
