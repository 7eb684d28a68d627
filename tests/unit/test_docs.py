"""The README's configuration table must name every setting the code reads."""

from pathlib import Path

import pytest
from pydantic import AliasChoices

from services.brain.config import BrainSettings
from services.channels.vapi.settings import VapiSettings
from services.channels.voipbin.profile import VoiceProfileSettings
from services.egress.config import EgressSettings
from services.ingress.config import IngressSettings
from shared.settings import BaseServiceSettings

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "README.md"


def env_names() -> set[str]:
    names = set()
    for cls in (
        BaseServiceSettings,
        IngressSettings,
        BrainSettings,
        EgressSettings,
        VoiceProfileSettings,
        VapiSettings,
    ):
        prefix = cls.model_config.get("env_prefix", "")
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                names.add(str(alias.choices[0]))
            elif isinstance(alias, str):  # an unprefixed name, e.g. SWITCHBOARD_ENV
                names.add(alias)
            else:
                names.add((prefix + name).upper())
    return names


def test_readme_documents_every_environment_variable() -> None:
    text = README.read_text(encoding="utf-8")
    missing = sorted(name for name in env_names() if f"`{name}`" not in text)
    assert not missing, f"README configuration table lacks: {missing}"
