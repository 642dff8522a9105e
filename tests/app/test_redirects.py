"""lib/redirects.py: the one check of callback and redirect URLs (no open redirect)."""

from __future__ import annotations

from pathlib import Path

import pytest

from owlat.app.lib import instance
from owlat.app.lib.errors import AuthFailure
from owlat.app.lib.redirects import absolute_url, checked_redirect, is_safe_redirect


@pytest.fixture(autouse=True)
def configured(tmp_path: Path) -> None:
    instance.configure(
        tmp_path,
        "http://owlat.test:3211",
        app_url="https://app.owlat.test",
        trusted_origins=("https://partner.example",),
    )


HOSTILE = [
    "//evil.example/phish",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "/dashboard\\..\\",
    "https://evil.example/",
    "http://evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/%2F%2Fevil.example",
    "/%2f%2fevil.example",
    "%2F%2Fevil.example",
    "/%252F%252Fevil.example",
    "/%5Cevil.example",
    "/%5cevil.example",
    "/%09/evil.example",
    "/%0a/evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "\t//evil.example",
    " //evil.example",
    "/ /evil.example",
    "/dashboard\n",
    "/\x00/evil.example",
    "/\u3000/evil.example",
    "/\uff0f/evil.example",
    "http:evil.example",
    "https:evil.example",
    "https:/evil.example",
    "https:///evil.example",
    "https:\\\\evil.example",
    "evil.example",
    "dashboard",
    "./dashboard",
    "https://partner.example@evil.example/",
    "https://user@partner.example/",
    "https://partner.example.evil.example/",
    "https://partner.example:8443/",
    "http://partner.example/",
    "ftp://partner.example/",
    "https://partner.example:99999/",
    "https://[::1/",
    "/" + "a" * 2048,
]

ALLOWED = [
    "/",
    "/dashboard",
    "/dashboard?x=1",
    "/dashboard#section",
    "/invite/accept?id=k57abc&token=a-b_c",
    "/search?q=a%2Fb",
    "/caf%C3%A9",
    "https://partner.example",
    "https://partner.example/welcome?x=1",
    "HTTPS://Partner.Example/welcome",
    "https://app.owlat.test/dashboard",
    "http://owlat.test:3211/api/auth/get-session",
]


@pytest.mark.parametrize("target", HOSTILE)
def test_hostile_targets_are_refused(target: str) -> None:
    assert not is_safe_redirect(target)
    with pytest.raises(AuthFailure) as refused:
        checked_redirect(target)
    assert (refused.value.error_code, refused.value.status) == ("INVALID_CALLBACK_URL", 400)


@pytest.mark.parametrize("target", ALLOWED)
def test_paths_and_trusted_origins_pass(target: str) -> None:
    assert checked_redirect(target) == target


def test_absent_and_named_fields() -> None:
    assert checked_redirect(None) is None
    assert checked_redirect("") is None
    with pytest.raises(AuthFailure) as refused:
        checked_redirect("//evil.example", "redirectTo")
    assert refused.value.error_code == "INVALID_REDIRECT_URL"
    assert str(refused.value) == (
        "Invalid redirectTo: give a path on this site (/...) or a URL on a trusted origin"
    )


def test_paths_lead_to_the_web_app() -> None:
    assert absolute_url("/dashboard?x=1") == "https://app.owlat.test/dashboard?x=1"
    assert absolute_url("https://partner.example/x") == "https://partner.example/x"
