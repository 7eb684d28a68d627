"""Hostile inputs generated from a golden payload, so every endpoint gets all of them.

An endpoint is described once: a golden (valid) JSON payload or form, and the fields it reads
(`JsonField` / `FormField`). From that, `json_cases` and `form_cases` derive every case: the
golden's leaves and sub-objects replaced by each wrong JSON type, lone surrogates in every
string (and key), huge and infinite number literals at every leaf, invalid UTF-8 bytes, deep
nesting, over-long ids, non-ASCII digits, 100 KB values. Each `Case` says whether the endpoint
must refuse it (a 4xx) or merely survive it (any answer below 500: a field the endpoint does
not read may hold anything).

Every generated string carries `MARKER`, so a test can prove that no log line quotes input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, quote

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

MARKER = "HOSTILEMARKER"
"""In every hostile string: it must never reach a log line."""
BIG = 100_000
"""Length of the "100 KB" values."""
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""What the endpoints accept as a provider id (VoIPBin uuids, Twilio sids)."""

Path = tuple[str | int, ...]
Kind = Literal["id", "str", "format", "object"]
"""`id`: a provider id (`ID_PATTERN`); `str`: any text; `format`: text in a fixed format that no
hostile value has (a phone number, a six-digit code); `object`: a JSON object."""


@dataclass(frozen=True)
class Case:
    """One request body and what the endpoint owes it."""

    name: str
    body: bytes
    must_refuse: bool


@dataclass(frozen=True)
class JsonField:
    """A field the endpoint reads: its JSON kind and whether it must be present."""

    kind: Kind
    required: bool = False


# -- JSON ---------------------------------------------------------------------------------------

_WRONG_VALUES: dict[str, Any] = {
    "string": f"{MARKER} text",
    "empty_string": "",
    "list": [MARKER],
    "int": 12345,
    "float": 1.5,
    "bool": True,
    "null": None,
    "object": {MARKER: MARKER},
    "huge_string": MARKER + "x" * BIG,
}
_RAW_NUMBERS = {
    "5000_digits": "1" + "0" * 5000,
    "45_digits": "1" * 45,
    "infinite": "1e999",
    "nan": "NaN",
    "minus_infinity": "-Infinity",
}
_RAW = "__hostile_raw_{}__"


def walk(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every path below the root of a JSON value, with its value (parents before children)."""
    children: Sequence[tuple[str | int, Any]] = ()
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    for key, child in children:
        yield (*path, key), child
        yield from walk(child, (*path, key))


def replaced(value: Any, path: Path, new: Any) -> Any:
    """A copy of `value` with the item at `path` replaced by `new`."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: replaced(v, rest, new) if k == head else v for k, v in value.items()}
    return [replaced(v, rest, new) if i == head else v for i, v in enumerate(value)]


def dumps(value: Any, raw: Mapping[str, bytes] | None = None) -> bytes:
    """JSON bytes of `value` (surrogates escaped as `\\udxxx`); each `raw` placeholder string
    is replaced by its bytes verbatim, for literals `json.dumps` cannot write."""
    body = json.dumps(value, ensure_ascii=True).encode()
    for placeholder, literal in (raw or {}).items():
        body = body.replace(json.dumps(placeholder).encode(), literal)
    return body


def refuses(field: JsonField | None, value: Any) -> bool:
    """Whether an endpoint that reads `field` must refuse `value` there."""
    if field is None:
        return False  # not read: anything goes (providers add fields)
    if value is None:
        return field.required
    if field.kind == "object":
        return not isinstance(value, dict)
    if not isinstance(value, str):
        return True
    if field.kind == "id":
        return not ID_PATTERN.fullmatch(value) and (field.required or value != "")
    return field.kind == "format"


def json_cases(
    golden: Any | Callable[[], Any], fields: Mapping[Path, JsonField], label: str = ""
) -> Iterator[Case]:
    """Every hostile variant of `golden` (see the module docstring).

    `golden` may be a factory: each case then starts from a fresh payload (new ids), so an
    endpoint that drops repeats cannot answer "duplicate" without looking at the field.
    """
    make: Callable[[], Any] = golden if callable(golden) else lambda: golden
    prefix = f"{label}:" if label else ""
    for path, original in walk(make()):
        where = prefix + "/".join(map(str, path))
        field = fields.get(path)
        for name, wrong in _WRONG_VALUES.items():
            yield Case(
                f"{where}={name}", dumps(replaced(make(), path, wrong)), refuses(field, wrong)
            )
        if field is not None and field.kind == "id":
            for length in (65, 10_000):
                yield Case(
                    f"{where}=id_{length}", dumps(replaced(make(), path, "a" * length)), True
                )
        for name, literal in _RAW_NUMBERS.items():
            placeholder = _RAW.format(name)
            body = dumps(replaced(make(), path, placeholder), {placeholder: literal.encode()})
            yield Case(f"{where}={name}", body, True)
        # Nesting inside the payload, not only around it.
        nested: Any = MARKER
        for _ in range(100):
            nested = [nested]
        yield Case(f"{where}=nested_100", dumps(replaced(make(), path, nested)), True)
        if isinstance(original, str):
            yield Case(
                f"{where}=lone_surrogate",
                dumps(replaced(make(), path, MARKER + "\ud800")),
                True,
            )
            yield Case(
                f"{where}=low_surrogate_only",
                dumps(replaced(make(), path, "\udfff" + MARKER)),
                True,
            )
            placeholder = _RAW.format("utf8")
            body = dumps(
                replaced(make(), path, placeholder),
                {placeholder: b'"' + MARKER.encode() + b'\xff\xfe\xc3("'},
            )
            yield Case(f"{where}=invalid_utf8", body, True)
        if isinstance(original, dict):
            with_key = {**original, MARKER + "\udc00": 1}
            yield Case(f"{where}=surrogate_key", dumps(replaced(make(), path, with_key)), True)
    if isinstance(root := make(), dict):
        with_key = {**root, MARKER + "\udc00": 1}
        yield Case(f"{prefix}root=surrogate_key", dumps(with_key), True)
        # An unknown field may be ignored or refused, but an error must not name it back.
        yield Case(f"{prefix}root=unknown_field", dumps({**make(), MARKER: MARKER}), False)
    yield from _whole_body_cases(prefix)


def _whole_body_cases(prefix: str) -> Iterator[Case]:
    deep_lists = b"[" * 10_000 + b"]" * 10_000
    deep_objects = b'{"a":' * 5_000 + b"1" + b"}" * 5_000
    bodies = {
        "deep_lists": deep_lists,
        "deep_objects": deep_objects,
        "deep_unclosed": b"[" * 100_000,
        "not_json": f"{MARKER} plain text".encode(),
        "invalid_utf8": b"\xff\xfe" + MARKER.encode(),
        "json_null": b"null",
        "json_list": json.dumps([MARKER]).encode(),
        "json_string": json.dumps(MARKER).encode(),
        "json_number": b"1" + b"0" * 5000,
        "truncated": b'{"' + MARKER.encode(),
    }
    for name, body in bodies.items():
        yield Case(f"{prefix}body={name}", body, True)


# -- forms --------------------------------------------------------------------------------------

FormKind = Literal["sid", "phone", "count", "code", "text"]


@dataclass(frozen=True)
class FormField:
    """A form field the endpoint reads and what it holds."""

    kind: FormKind
    required: bool = False


_FORM_VALUES: dict[str, str] = {
    "superscript_two": "²",
    "arabic_indic_digits": "١٢",
    "fullwidth_five": "\uff15",
    "digits_5000": "1" * 5000,
    "huge": MARKER + "x" * BIG,
    "empty": "",
    "text": f"{MARKER} text",
    "whatsapp": "whatsapp:+14155550123",
    "messenger": "messenger:" + MARKER,
    "negative": "-1",
    "padded": " 1",
    "replacement_chars": "\ufffd\ufffd",
}


def _form_refuses(field: FormField | None, value: str) -> bool:
    if field is None:
        return False
    if value == "":
        return field.required  # an empty optional field is an absent one
    if field.kind == "text":
        return False
    if field.kind == "sid":
        return not ID_PATTERN.fullmatch(value)
    if field.kind in ("count", "code"):
        return not (value.isascii() and value.isdigit() and len(value) <= 6)
    return True  # phone: none of the values above is an SMS number


def encode_form(pairs: Sequence[tuple[str, str]]) -> bytes:
    """`application/x-www-form-urlencoded`, as Twilio writes it (UTF-8, percent-escaped)."""
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs).encode()


def parse_pairs(body: bytes) -> list[tuple[str, str]]:
    """The fields a server sees in `body` (what a signature is computed over)."""
    return parse_qsl(body.decode("utf-8"), keep_blank_values=True)


def form_cases(
    golden: Sequence[tuple[str, str]], fields: Mapping[str, FormField], label: str = ""
) -> Iterator[Case]:
    """Every hostile variant of a golden form (see the module docstring)."""
    prefix = f"{label}:" if label else ""
    names = [name for name, _ in golden]
    for index, name in enumerate(names):
        field = fields.get(name)
        for value_name, value in _FORM_VALUES.items():
            pairs = [*golden[:index], (name, value), *golden[index + 1 :]]
            yield Case(
                f"{prefix}{name}={value_name}", encode_form(pairs), _form_refuses(field, value)
            )
        # Percent-escaped bytes that are not UTF-8, and an escaped lone surrogate (CESU-8):
        # the form decoder turns both into U+FFFD, which the field's own rule then judges.
        for escape_name, escaped in (("bad_utf8", "%FF%FE"), ("surrogate", "%ED%A0%80")):
            body = encode_form([*golden[:index], *golden[index + 1 :]])
            body += f"&{quote(name)}={MARKER}{escaped}".encode()
            refuse = _form_refuses(field, MARKER + "\ufffd")
            yield Case(f"{prefix}{name}={escape_name}", body, refuse)
        if field is not None and field.kind != "text":
            repeated = [*golden, (name, golden[index][1] + "0")]
            yield Case(f"{prefix}{name}=repeated", encode_form(repeated), True)
    for field_name, field in fields.items():
        if field.required:
            missing = [pair for pair in golden if pair[0] != field_name]
            yield Case(f"{prefix}{field_name}=missing", encode_form(missing), True)
    yield Case(f"{prefix}body=raw_invalid_utf8", encode_form(golden) + b"&X=\xff\xfe", True)


def query_cases(params: Mapping[str, str], fields: Mapping[str, FormField]) -> Iterator[Case]:
    """Hostile query strings (the `body` of each case is the raw query)."""
    # URLs are short: HTTP clients and servers cap them at a few KB, so no 100 KB values.
    values = {**_FORM_VALUES, "huge": MARKER + "x" * 4_000}
    for name in params:
        field = fields.get(name)
        for value_name, value in values.items():
            query = {**params, name: value}
            yield Case(
                f"query:{name}={value_name}",
                encode_form(list(query.items())),
                _form_refuses(field, value),
            )


# -- route coverage -------------------------------------------------------------------------


BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def http_routes(app: FastAPI, methods: Collection[str] = BODY_METHODS) -> set[tuple[str, str]]:
    """`(method, path template)` of every HTTP route of `app` answering one of `methods`."""
    return {(m, path) for path, answers in _walk(app.routes) for m in answers if m in methods}


def _walk(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    for route in routes:
        # Since FastAPI 0.16x `include_router` keeps each router as one branch of
        # `app.routes` (an `_IncludedRouter`) instead of copying its routes in: descend.
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from _walk(included.routes, prefix + str(getattr(context, "prefix", "")))
        elif isinstance(route, APIRoute):
            yield prefix + route.path, set(route.methods)


def uncovered_routes(app: FastAPI, covered: Collection[tuple[str, str]]) -> list[tuple[str, str]]:
    """Body-carrying routes of `app` that have no entry in `covered` (sorted)."""
    return sorted(http_routes(app) - set(covered))
