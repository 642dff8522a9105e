"""Domain names as users type them: the stored form, or a precise refusal."""

from __future__ import annotations

import pytest

from owlat.app.lib.domains.names import normalize_domain, normalize_tracking_domain
from owlat.app.lib.errors import AppError


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Example.COM", "example.com"),
        ("  news.example.com.  ", "news.example.com"),
        ("mail.example.co.uk", "mail.example.co.uk"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("ПРИМЕР.рф", "xn--e1afmkfd.xn--p1ai"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("my-shop.io", "my-shop.io"),
        ("user.github.io", "user.github.io"),
    ],
)
def test_accepted_names_are_stored_lowercase_ascii(typed: str, stored: str) -> None:
    assert normalize_domain(typed) == stored


LONG_LABEL = "a" * 64
LONG_NAME = ".".join(["a" * 63] * 4) + ".com"


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Invalid domain '': enter a domain name such as example.com"),
        ("me@example.com", "this is an email address; enter only the part after the @"),
        ("https://example.com/", "enter only the domain name, without http:// or a path"),
        ("example.com/path", "without http:// or a path"),
        ("192.0.2.10", "an IP address cannot be a sending domain; enter a domain name"),
        ("[2001:db8::1]", "an IP address cannot be a sending domain"),
        ("localhost", ".localhost is reserved for local or private use"),
        ("printer.local", ".local is reserved for local or private use"),
        ("owlat.test", ".test is reserved"),
        ("Bücher.example", ".example is reserved"),
        ("intranet", ".intranet is not a public top-level domain"),
        ("com", "com is a public suffix (like com or co.uk); enter a domain registered under "
         "it, such as yourcompany.com"),
        ("co.uk", "co.uk is a public suffix"),
        ("github.io", "github.io is a public suffix"),
        ("example.notatld", ".notatld is not a public top-level domain"),
        ("example.123", "the top-level domain cannot be a number"),
        ("a..example.com", "empty label (two dots in a row, or a dot at the start)"),
        (".example.com", "empty label"),
        ("-shop.example.com", "label '-shop' starts or ends with a hyphen"),
        ("shop-.example.com", "label 'shop-' starts or ends with a hyphen"),
        ("my_shop.example.com", "label 'my_shop' may hold only letters, digits and hyphens"),
        ("example.com:25", "label 'com:25' may hold only letters, digits and hyphens"),
        ("ab--cd.example.com", "label 'ab--cd' has hyphens in the 3rd and 4th position"),
        ("xn--zz.example.com", "'xn--zz' is not a valid punycode label"),
        (f"{LONG_LABEL}.com", "is longer than 63 characters"),
        (LONG_NAME, "longer than 253 characters"),
    ],
)  # fmt: skip
def test_refusals_name_the_rule(typed: str, message: str) -> None:
    with pytest.raises(AppError) as error:
        normalize_domain(typed)
    assert error.value.error_code == "INVALID_DOMAIN"
    assert message in str(error.value)
    assert str(error.value).startswith(f"Invalid domain {typed.strip()[:80]!r}: ")


def test_kept_answers_are_the_same_and_refusals_are_raised_again() -> None:
    """`normalize_domain` keeps its answers (it runs for every send's From domain)."""
    assert normalize_domain(" Shop.Example.COM. ") == normalize_domain(" Shop.Example.COM. ")
    assert normalize_domain(" Shop.Example.COM. ") == "shop.example.com"
    for _ in range(2):
        with pytest.raises(AppError, match="is not a public top-level domain"):
            normalize_domain("example.invalidtld")


def test_a_tracking_domain_must_be_a_subdomain() -> None:
    assert normalize_tracking_domain("Track.Example.com") == "track.example.com"
    with pytest.raises(AppError, match="a tracking domain must be a subdomain, such as "
                       r"track\.example\.co\.uk \(a CNAME cannot be published at "
                       r"example\.co\.uk itself\)"):  # fmt: skip
        normalize_tracking_domain("example.co.uk")
