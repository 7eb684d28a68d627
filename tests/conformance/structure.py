"""The structural checks every channel folder passes, a freshly scaffolded one included.

`structural_problems("services.channels.<name>")` imports the folder's `channel.py` and
`profile.py` and returns what is wrong, in words (an empty list: nothing). It needs no broker:
adapters are built against contexts whose Redis and Kafka clients are never connected (a
channel does no work at build time, see docs/channels.md).

What is checked:
- `channel.py` exists and exposes exactly one `ChannelPlugin`, named by the contracts'
  `CHANNEL_NAME_PATTERN`, with an inbound or an outbound side (or both);
- `profile.py` exists with `NAME` (the plugin's name) and a valid `ChannelProfile` (a module
  level profile, or a `*profile` function callable without arguments);
- `build_inbound` builds an adapter with `router()` (an `APIRouter` with at least one route),
  `async run()` and `async close()`;
- `build_outbound` builds an adapter whose `channel` is the plugin's name, with
  `async deliver(reply)`, `async run()` and `async close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi import APIRouter
from redis.asyncio import Redis

from services.channels.sdk.plugin import ChannelPlugin, EgressContext, IngressContext
from services.channels.sdk.publish import InboundPublisher
from services.common.inbox import InboxReader, InboxWriter
from services.egress.config import EgressSettings
from services.ingress.config import IngressSettings
from services.ingress.identity import IdentityResolver
from shared.contracts import CHANNEL_NAME_PATTERN, ChannelProfile

CHANNELS_DIR = Path(__file__).resolve().parents[2] / "services" / "channels"
NOT_CHANNELS = frozenset({"sdk", "__pycache__"})
UNUSED_REDIS = "redis://127.0.0.1:9/0"
"""Never connected: building an adapter must not talk to anything."""


def channel_packages(root: Path = CHANNELS_DIR) -> list[str]:
    """Every folder under `services/channels/` that is a channel (has a `channel.py`), the
    template included, as a package name."""
    return sorted(
        f"services.channels.{folder.name}"
        for folder in root.iterdir()
        if folder.is_dir() and folder.name not in NOT_CHANNELS and (folder / "channel.py").exists()
    )


@contextlib.contextmanager
def channels_from(folder: Path) -> Iterator[None]:
    """Make channel folders under `folder` (a scaffold's output) importable as
    `services.channels.<name>`, as they would be in the repository; undone on exit."""
    import services.channels

    before = set(sys.modules)
    services.channels.__path__.append(str(folder))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        services.channels.__path__.remove(str(folder))
        for name in set(sys.modules) - before:
            if name.startswith("services.channels."):
                del sys.modules[name]
        importlib.invalidate_caches()


def plugins_in(module: ModuleType) -> list[ChannelPlugin]:
    """The distinct `ChannelPlugin` instances a module exposes."""
    found: dict[int, ChannelPlugin] = {}
    for value in vars(module).values():
        if isinstance(value, ChannelPlugin):
            found[id(value)] = value
    return list(found.values())


def the_plugin(package: str) -> ChannelPlugin:
    """The one plugin of `<package>.channel` (asserts there is exactly one)."""
    plugins = plugins_in(importlib.import_module(f"{package}.channel"))
    assert len(plugins) == 1, f"{package}.channel exposes {len(plugins)} ChannelPlugins"
    return plugins[0]


def profiles_in(module: ModuleType) -> Iterator[tuple[str, ChannelProfile]]:
    """The profiles `profile.py` declares: module-level instances, and what its own public
    `*profile` functions return when called without arguments."""
    for attr, value in vars(module).items():
        if isinstance(value, ChannelProfile):
            yield attr, value
        elif (
            inspect.isfunction(value)
            and value.__module__ == module.__name__
            and attr.endswith("profile")
            and not attr.startswith("_")
            and _callable_without_arguments(value)
        ):
            made = value()
            if isinstance(made, ChannelProfile):
                yield f"{attr}()", made


def _callable_without_arguments(function: Callable[..., Any]) -> bool:
    parameters = inspect.signature(function).parameters.values()
    return all(
        p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in parameters
    )


def structural_problems(package: str) -> list[str]:
    """Everything wrong with the channel folder `package` (see the module docstring)."""
    problems: list[str] = []
    try:
        module = importlib.import_module(package)
    except Exception as exc:  # any import error is the finding
        return [f"{package} does not import: {type(exc).__name__}: {exc}"]
    folder = Path(next(iter(module.__path__)))
    for required in ("channel.py", "profile.py"):
        if not (folder / required).is_file():
            problems.append(f"{folder.name}/{required} is missing")
    if problems:
        return problems
    try:
        channel = importlib.import_module(f"{package}.channel")
        profile_module = importlib.import_module(f"{package}.profile")
    except Exception as exc:
        return [f"{package}.channel or .profile does not import: {type(exc).__name__}: {exc}"]

    plugins = plugins_in(channel)
    if len(plugins) != 1:
        return [f"channel.py must expose exactly one ChannelPlugin, found {len(plugins)}"]
    plugin = plugins[0]
    if not re.fullmatch(CHANNEL_NAME_PATTERN, plugin.name):
        problems.append(f"the plugin name {plugin.name!r} does not match {CHANNEL_NAME_PATTERN}")
    if plugin.build_inbound is None and plugin.build_outbound is None:
        problems.append("the plugin builds neither an inbound nor an outbound adapter")

    name = getattr(profile_module, "NAME", None)
    if name != plugin.name:
        problems.append(f"profile.NAME is {name!r}, the plugin is named {plugin.name!r}")
    problems += _profile_problems(profile_module)
    problems += asyncio.run(_adapter_problems(plugin))
    return problems


def _profile_problems(module: ModuleType) -> list[str]:
    try:
        profiles = list(profiles_in(module))
    except Exception as exc:
        return [f"building the profile failed: {type(exc).__name__}: {exc}"]
    if not profiles:
        return ["profile.py declares no ChannelProfile (an instance or a `*profile()` function)"]
    problems = []
    for where, profile in profiles:
        try:
            ChannelProfile.model_validate(profile.model_dump())
        except ValueError as exc:
            problems.append(f"profile.{where} is not a valid ChannelProfile: {exc}")
    return problems


class _NoOps:
    """An `OpsEmitter` stand-in: building an adapter must not emit anything."""

    async def emit(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("an adapter emitted an ops event while being built")

    async def receipt(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("an adapter emitted a receipt while being built")


def ingress_context(settings: IngressSettings, redis: Redis) -> IngressContext:
    """What ingress hands `build_inbound`, with clients that are never connected."""
    ops: Any = _NoOps()
    publisher = InboundPublisher(None, "unused.inbound", ops, 1.0)  # type: ignore[arg-type]
    return IngressContext(
        settings=settings,
        redis=redis,
        identity=IdentityResolver(redis, settings.redis_prefix, settings.default_region),
        publisher=publisher,
        ops=ops,
        inbox=InboxReader(redis, settings.redis_prefix, settings.instance_id),
    )


def egress_context(settings: EgressSettings, redis: Redis) -> EgressContext:
    """What egress hands `build_outbound`, with clients that are never connected."""
    ops: Any = _NoOps()
    return EgressContext(
        settings=settings, redis=redis, ops=ops, inbox=InboxWriter(redis, settings.redis_prefix)
    )


async def _adapter_problems(plugin: ChannelPlugin) -> list[str]:
    problems: list[str] = []
    redis = Redis.from_url(UNUSED_REDIS)
    try:
        if plugin.build_inbound is not None:
            settings = IngressSettings(redis_url=UNUSED_REDIS, redis_prefix="structure")
            problems += await _built(
                "build_inbound",
                lambda: plugin.build_inbound(ingress_context(settings, redis)),  # type: ignore[misc]
                _inbound_problems,
            )
        if plugin.build_outbound is not None:
            settings = EgressSettings(redis_url=UNUSED_REDIS, redis_prefix="structure")
            problems += await _built(
                "build_outbound",
                lambda: plugin.build_outbound(egress_context(settings, redis)),  # type: ignore[misc]
                lambda adapter: _outbound_problems(adapter, plugin.name),
            )
    finally:
        await redis.aclose()
    return problems


async def _built(
    what: str, build: Callable[[], Any], check: Callable[[Any], list[str]]
) -> list[str]:
    try:
        adapter = build()
    except Exception as exc:
        return [f"{what} failed: {type(exc).__name__}: {exc}"]
    problems = [f"{what}: {problem}" for problem in check(adapter)]
    close = getattr(adapter, "close", None)
    if inspect.iscoroutinefunction(close):
        await close()
    return problems


def _coroutine_methods(adapter: Any, names: tuple[str, ...]) -> list[str]:
    return [
        f"{type(adapter).__name__}.{name} must be an async method"
        for name in names
        if not inspect.iscoroutinefunction(getattr(adapter, name, None))
    ]


def _inbound_problems(adapter: Any) -> list[str]:
    problems = _coroutine_methods(adapter, ("run", "close"))
    router_of = getattr(adapter, "router", None)
    if not callable(router_of):
        return [*problems, f"{type(adapter).__name__} has no router() method"]
    router = router_of()
    if not isinstance(router, APIRouter):
        problems.append(f"router() returned a {type(router).__name__}, not an APIRouter")
    elif not router.routes:
        problems.append("router() has no routes")
    return problems


def _outbound_problems(adapter: Any, name: str) -> list[str]:
    problems = _coroutine_methods(adapter, ("deliver", "run", "close"))
    channel = getattr(adapter, "channel", None)
    if channel != name:
        problems.append(f"the adapter's channel is {channel!r}, the plugin is named {name!r}")
    return problems
