"""The word lists of the content scanner (`content_scan.py`), kept small on purpose.

Each phrase is matched case-insensitively as whole words (runs of spaces match any
whitespace). Severity is `high` (20 points), `medium` (10) or `low` (3): one low phrase
is the wording of many honest mails, several together are a spam message's.

* `SPAM_PHRASES`: the classic bulk-mail wording of spam filters' rule sets (money, urgency,
  pressure, "no risk" promises, credential requests).
* `PROHIBITED`: what no organization may send through Owlat (drugs sold without
  prescription, counterfeit goods, fake documents, crypto "doubling" scams).
* `SHORTENERS`: public URL shorteners, which hide where a link goes.
* `BRANDS`: the names phishing imitates most, compared with words and host names after
  mapping look-alike letters (`CONFUSABLES`) to Latin ones.
* `CONFUSABLES`: Cyrillic and Greek letters drawn like Latin ones (a subset of Unicode's
  confusables.txt: the ones seen in phishing).
"""

from __future__ import annotations

from typing import Final, Literal

Severity = Literal["high", "medium", "low"]

SPAM_PHRASES: Final[dict[str, Severity]] = {
    # money and prizes
    "100% free": "medium",
    "cash bonus": "medium",
    "earn extra cash": "medium",
    "make money fast": "high",
    "extra income": "low",
    "double your income": "medium",
    "you have been selected": "medium",
    "you are a winner": "medium",
    "claim your prize": "medium",
    "congratulations you won": "medium",
    "risk-free": "low",
    "no credit check": "medium",
    "lowest price": "low",
    "best price": "low",
    "million dollars": "medium",
    "$$$": "medium",
    "free money": "high",
    "get paid": "low",
    # urgency and pressure
    "act now": "low",
    "limited time offer": "low",
    "urgent": "low",
    "order now": "low",
    "don't delete": "medium",
    "this is not spam": "medium",
    "once in a lifetime": "low",
    "while supplies last": "low",
    "what are you waiting for": "low",
    # credential and account pressure (phishing wording)
    "verify your password": "high",
    "confirm your password": "high",
    "enter your password": "high",
    "account will be suspended": "medium",
    "account has been suspended": "medium",
    "unusual sign-in activity": "low",
    "update your billing information": "medium",
    "wire transfer": "low",
}

PROHIBITED: Final[dict[str, Severity]] = {
    "viagra": "high",
    "cialis": "high",
    "without prescription": "high",
    "counterfeit": "high",
    "replica watches": "high",
    "fake passport": "high",
    "fake id": "high",
    "double your bitcoin": "high",
    "send bitcoin": "high",
    "guaranteed winnings": "high",
}

SHORTENERS: Final = frozenset({
    "bit.ly", "tinyurl.com", "t.co", "goo.gl", "ow.ly", "is.gd", "buff.ly", "cutt.ly",
    "rebrand.ly", "shorturl.at", "tiny.cc", "rb.gy", "t.ly", "s.id", "v.gd",
})  # fmt: skip

BRANDS: Final = frozenset({
    "paypal", "apple", "icloud", "microsoft", "outlook", "office365", "google", "gmail",
    "amazon", "netflix", "facebook", "instagram", "whatsapp", "linkedin", "dropbox",
    "docusign", "adobe", "ebay", "spotify", "coinbase", "binance", "chase", "wellsfargo",
    "fedex", "dhl", "usps", "visa", "mastercard",
})  # fmt: skip

CONFUSABLES: Final[dict[str, str]] = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "і": "i", "ј": "j", "к": "k", "м": "m",
    "н": "h", "о": "o", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s",
    "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l",
    # Greek
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ω": "w",
}  # fmt: skip
