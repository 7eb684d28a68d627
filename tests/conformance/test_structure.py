"""Every channel folder passes the structural checks (the template included), every
registered channel runs the conformance suite, and the checks find what they should."""

from __future__ import annotations

import importlib
import textwrap
from pathlib import Path

import pytest

from services.channels.registry import CHANNELS
from tests.conformance.base import ChannelConformance
from tests.conformance.structure import channel_packages, channels_from, structural_problems

pytestmark = pytest.mark.unit

SUITES = Path(__file__).parent


@pytest.mark.parametrize("package", channel_packages())
def test_every_channel_folder_passes_the_structural_checks(package: str) -> None:
    assert structural_problems(package) == []


def test_the_template_is_among_the_checked_folders() -> None:
    assert "services.channels._template" in channel_packages()


def test_every_registered_channel_runs_the_conformance_suite() -> None:
    for path in SUITES.glob("test_*.py"):
        importlib.import_module(f"tests.conformance.{path.stem}")
    covered = {suite.plugin.name for suite in ChannelConformance.__subclasses__()}
    assert {plugin.name for plugin in CHANNELS} <= covered


GOOD_PROFILE = """
from shared.contracts import ChannelProfile
NAME = "{name}"
PROFILE = ChannelProfile()
"""
GOOD_CHANNEL = """
from services.channels.sdk.plugin import ChannelPlugin, NoBackgroundWork
from services.channels.{name}.profile import NAME

class Output(NoBackgroundWork):
    channel = {channel}
    async def deliver(self, reply): ...

def build_outbound(ctx):
    return Output()

PLUGIN = ChannelPlugin(name=NAME, build_outbound=build_outbound)
"""


def broken(folder: Path, name: str, **files: str) -> str:
    """A channel folder `name` under `folder` with `files` (others: a minimal good channel)."""
    package = folder / name
    package.mkdir()
    sources = {
        "__init__": "",
        "profile": GOOD_PROFILE.format(name=name),
        "channel": GOOD_CHANNEL.format(name=name, channel="NAME"),
        **files,
    }
    for module, source in sources.items():
        if source is not None:
            (package / f"{module}.py").write_text(textwrap.dedent(source))
    return f"services.channels.{name}"


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({}, None),
        ({"channel": GOOD_CHANNEL + "\nOTHER = ChannelPlugin(name='x')\n"}, "exactly one"),
        (
            {
                "profile": GOOD_PROFILE.replace('"{name}"', '"other"'),
                "channel": GOOD_CHANNEL.replace("name=NAME", 'name="{name}"'),
            },
            "profile.NAME is 'other'",
        ),
        ({"profile": 'NAME = "{name}"\n'}, "declares no ChannelProfile"),
        ({"channel": GOOD_CHANNEL.replace("channel = {channel}", "channel = 'x'")}, "channel is"),
        ({"channel": GOOD_CHANNEL.replace("async def deliver", "def deliver")}, "async method"),
        ({"channel": "raise RuntimeError('boom')\n"}, "does not import"),
        ({"channel": GOOD_CHANNEL.replace("return Output()", "raise KeyError('s')")}, "failed"),
    ],
    ids=[
        "good",
        "two_plugins",
        "other_name",
        "no_profile",
        "wrong_channel",
        "sync_deliver",
        "import_error",
        "build_error",
    ],
)
def test_the_structural_checks_find_what_is_wrong(
    tmp_path: Path, files: dict[str, str], problem: str | None
) -> None:
    name = "probe"
    files = {
        module: source.replace("{name}", name).replace("{channel}", "NAME")
        for module, source in files.items()
    }
    with channels_from(tmp_path):
        problems = structural_problems(broken(tmp_path, name, **files))
    if problem is None:
        assert problems == []
    else:
        assert any(problem in line for line in problems), problems


def test_a_bad_plugin_name_and_a_missing_profile_module_are_found(tmp_path: Path) -> None:
    with channels_from(tmp_path):
        package = broken(tmp_path, "probe", profile=None)  # type: ignore[arg-type]
        assert structural_problems(package) == ["probe/profile.py is missing"]
    with channels_from(tmp_path / "other"):
        (tmp_path / "other").mkdir()
        channel = GOOD_CHANNEL.format(name="probe2", channel="NAME").replace(
            "name=NAME", "name='Probe-2'"
        )
        package = broken(tmp_path / "other", "probe2", channel=channel)
        problems = structural_problems(package)
    assert any("does not match" in line for line in problems), problems
