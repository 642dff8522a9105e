"""The dashboard's copies of the backend's fixed vocabularies (web/src) are the backend's:
API key scopes (ApiKeysView.vue, from api_keys.SCOPES), automation triggers with their
parameter and step types (automations.ts, from lib/automations.py), campaign statuses
(campaigns.ts, from schema.CAMPAIGN_STATUSES). A scope, trigger, step or status added on
one side only fails here. No browser needed: the TypeScript is read."""

from __future__ import annotations

import re

from owlat.app import api_keys, schema
from owlat.app.lib import automations
from tests.web.conftest import WEB

SRC = WEB / "src"


def _block(path: str, start: str) -> str:
    """The text of `path` from `start` to the first line that closes it (`]` or `}`)."""
    text = (SRC / path).read_text()
    begin = text.index(start)
    end = re.compile(r"^[\]}]", re.MULTILINE).search(text, begin)
    assert end is not None, f"{path}: {start} is not closed"
    return text[begin : end.start()]


def test_api_key_scopes_are_the_backends() -> None:
    block = _block("views/ApiKeysView.vue", "const SCOPES = [")
    assert tuple(re.findall(r'"([^"]+)"', block)) == api_keys.SCOPES


def test_automation_triggers_and_step_types_are_the_backends() -> None:
    triggers = _block("automations.ts", "export const TRIGGERS")
    found = dict(re.findall(r"^  (\w+): \{([^\n]*)\},?$", triggers, re.MULTILINE))
    assert set(found) == set(automations.TRIGGERS)
    for name, parameter in automations.TRIGGERS.items():
        written = re.search(r'parameter: "(\w+)"', found[name])
        assert (written and written.group(1)) == (parameter or None), name
    steps = _block("automations.ts", "export const STEP_TYPES")
    assert tuple(re.findall(r"^  (\w+): ", steps, re.MULTILINE)) == automations.STEP_TYPES


def test_campaign_statuses_are_the_backends() -> None:
    block = _block("campaigns.ts", "export const STATUSES")
    found = re.findall(r'value: "(\w+)"', block)
    assert sorted(found) == sorted(schema.CAMPAIGN_STATUSES)
