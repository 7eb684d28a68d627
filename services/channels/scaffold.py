"""`make new-channel NAME=<name>`: a new channel folder, copied from the template.

    python -m services.channels.scaffold --name kiosk [--into services/channels]

The template is `services/channels/_template/`: a small working channel (a signed webhook
that publishes through `ChannelPublisher`, an outbound adapter that parks every reply as
`not_implemented`), kept importable, linted and type-checked where it lives, and held to the
conformance suite's structural checks like every channel folder. Copying renames it: the
tokens `_template` (the package), `TEMPLATE` (constants, environment variables), `Template`
(class names, prose) and `template` (the wire name, paths, functions) become the new name in
each spelling. The registry is not edited: the line to add is printed.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from shared.contracts import CHANNEL_NAME_PATTERN

CHANNELS_DIR = Path(__file__).resolve().parent
TEMPLATE_DIR = CHANNELS_DIR / "_template"
PACKAGE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
"""A channel name that is also a Python package name: the pattern of the contracts
(`CHANNEL_NAME_PATTERN`) without `-`."""
RESERVED = frozenset({"sdk", "template", "registry", "scaffold"})
DROP_MARKER = "scaffold:drop"
"""Lines of the template that explain the template; they are not copied."""
_TOKENS = re.compile(r"_template|TEMPLATE|Template|template")
_FIRST_PARTY_IMPORT = re.compile(r"^from (services\.\S+) import ")


class ScaffoldError(ValueError):
    """The channel cannot be created as asked (a bad name, an existing folder)."""


def check_name(name: str) -> None:
    """Raise `ScaffoldError` unless `name` can be a new channel's name and package."""
    if not re.fullmatch(CHANNEL_NAME_PATTERN, name) or not PACKAGE_NAME.fullmatch(name):
        raise ScaffoldError(
            f"{name!r} is not a channel name: lower case letters, digits and `_`, starting"
            " with a letter, at most 32 characters"
        )
    if name in RESERVED or "template" in name:
        raise ScaffoldError(f"{name!r} is reserved")


def camel(name: str) -> str:
    """`kiosk` -> `Kiosk`, `in_store_kiosk` -> `InStoreKiosk`."""
    return "".join(part.capitalize() for part in name.split("_"))


def render(text: str, name: str) -> str:
    """The template's `text` for the channel `name` (one pass: a name is never re-replaced)."""
    spellings = {
        "_template": name,
        "TEMPLATE": name.upper(),
        "Template": camel(name),
        "template": name,
    }
    lines = [line for line in text.splitlines(keepends=True) if DROP_MARKER not in line]
    return _sort_first_party_imports(
        _TOKENS.sub(lambda match: spellings[match.group()], "".join(lines))
    )


def _sort_first_party_imports(text: str) -> str:
    """Re-sort each run of `from services... import` statements (one line, or parenthesized
    over several): `_template` sorts before `sdk`, the new name may not. The order is ruff's
    isort order: by module, case-insensitive, numbers by value."""

    def key(statement: tuple[str, list[str]]) -> list[tuple[int, int | str]]:
        parts = re.split(r"(\d+)", statement[0].lower())
        return [(0, int(part)) if part.isdigit() else (1, part) for part in parts]

    lines = text.splitlines(keepends=True)
    out: list[str] = []
    run: list[tuple[str, list[str]]] = []
    index = 0
    while index < len(lines):
        match = _FIRST_PARTY_IMPORT.match(lines[index])
        if match:
            statement = [lines[index]]
            while statement[-1].rstrip().endswith("(") or (
                len(statement) > 1 and not statement[-1].startswith(")")
            ):
                index += 1
                statement.append(lines[index])
            run.append((match.group(1), statement))
            index += 1
            continue
        out += [line for _, statement in sorted(run, key=key) for line in statement]
        run = []
        out.append(lines[index])
        index += 1
    out += [line for _, statement in sorted(run, key=key) for line in statement]
    return "".join(out)


def template_files(template: Path = TEMPLATE_DIR) -> list[Path]:
    """The template's files, relative to it (caches left out)."""
    return sorted(
        path.relative_to(template)
        for path in template.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


def scaffold(name: str, into: Path = CHANNELS_DIR, template: Path = TEMPLATE_DIR) -> Path:
    """Create `<into>/<name>/` from the template; returns the new folder."""
    check_name(name)
    target = into / name
    if target.exists():
        raise ScaffoldError(f"{target} already exists")
    for relative in template_files(template):
        destination = target / Path(render(str(relative), name))
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(render((template / relative).read_text(), name))
    return target


def registry_line(name: str) -> str:
    """The import to add to `services/channels/registry.py` (its constant then goes into
    `CHANNELS`)."""
    return f"from services.channels.{name}.channel import {name.upper()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.channels.scaffold",
        description="Create a channel folder from the template (services/channels/_template/).",
    )
    parser.add_argument("--name", required=True, help="the channel's name, e.g. kiosk")
    parser.add_argument(
        "--into",
        type=Path,
        default=CHANNELS_DIR,
        help="the folder to create <name>/ in (default: services/channels)",
    )
    args = parser.parse_args(argv)
    try:
        target = scaffold(args.name, args.into)
    except ScaffoldError as error:
        print(f"new-channel: {error}", file=sys.stderr)
        return 2
    print(f"created {target}/ from {TEMPLATE_DIR.name}/ (what to do next: {target}/README.md)")
    print("add to services/channels/registry.py:")
    print(f"    {registry_line(args.name)}")
    print(f"and list {args.name.upper()} in CHANNELS there.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
