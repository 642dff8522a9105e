"""A Python client of Owlat's REST API v1: contacts, events, mailing lists (the API's
"topics") and transactional email, synchronous (`OwlatClient`) or asynchronous
(`AsyncOwlatClient`), behaving as upstream's JavaScript SDK does (reference §14).

    from owlat.client import OwlatClient

    with OwlatClient("lm_live_...", base_url="https://owlat.example.com") as owlat:
        owlat.transactional.send(
            slug="order-receipt", email="ada@example.com", data_variables={"orderId": "A-17"}
        )

`base_url` is the site port of the server (`owlat dev`: http://127.0.0.1:3211). Every
method answers the `data` of the response (a dict), `contacts.list` the whole page
(`{data, pagination}`); `contacts.list_all` walks every page.

Errors. An answer that is not 2xx raises the class of its status, with `status`, `code` (the
error's category), `message`, `data` and `rate_limit` (the X-RateLimit-* headers; 10, 10, 0
when absent); a request refused before it is sent (no transactionalId or slug, bad
attachments) raises `ValidationError` without a status:

    OwlatError                 any other status
    ├── ValidationError        400
    ├── AuthenticationError    401
    ├── LimitReachedError      402
    ├── ForbiddenError         403
    ├── NotFoundError          404
    ├── ConflictError          409
    ├── InvalidStateError      422
    ├── RateLimitError         429 (`retry_after`, seconds)
    └── NetworkError           no answer: refused, reset or timed out

Retries (`RetryPolicy`; `retry=None` turns them off):
- 429, whatever the method: after the answer's Retry-After (or `data.retryAfter`), at most
  `max_retry_after` seconds;
- 500, 502, 503, 504 and network errors: GET, PUT and DELETE only, after `initial_delay` ×
  `backoff_multiplier`^attempt. A POST is never repeated: the server may have carried it
  out (send a transactional email with `idempotency_key` to retry it safely yourself).
At most `max_retries` retries; then the last error is raised.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

__all__ = [
    "AsyncOwlatClient",
    "AuthenticationError",
    "ConflictError",
    "ForbiddenError",
    "InvalidStateError",
    "LimitReachedError",
    "NetworkError",
    "NotFoundError",
    "OwlatClient",
    "OwlatError",
    "RateLimit",
    "RateLimitError",
    "RetryPolicy",
    "ValidationError",
    "attachment",
]

DEFAULT_BASE_URL = "http://127.0.0.1:3211"
DEFAULT_TIMEOUT = 30.0
RETRIED_STATUSES = frozenset({500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE"})
MAX_ATTACHMENTS = 10
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
# Types a mail provider would refuse to carry anyway (executables and scripts).
BLOCKED_TYPES = frozenset(
    {
        "application/x-msdownload",
        "application/x-msdos-program",
        "application/x-executable",
        "application/x-sh",
        "application/x-bat",
        "application/vnd.microsoft.portable-executable",
    }
)
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


# -- errors ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """The key's rate limit as an answer reported it."""

    limit: int = 10
    remaining: int = 10
    reset: int = 0

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimit:
        def number(name: str, default: int) -> int:
            try:
                return int(headers.get(name, default))
            except ValueError:
                return default

        return cls(
            number("x-ratelimit-limit", 10),
            number("x-ratelimit-remaining", 10),
            number("x-ratelimit-reset", 0),
        )


class OwlatError(Exception):
    """An error answer of the API (or no answer at all)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        data: Mapping[str, Any] | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.data = dict(data or {})
        self.rate_limit = rate_limit or RateLimit()


class ValidationError(OwlatError):
    """400: the request is not valid (or was refused before it was sent)."""


class AuthenticationError(OwlatError):
    """401: the API key is missing, malformed, unknown, revoked or expired."""


class LimitReachedError(OwlatError):
    """402: a plan limit was reached."""


class ForbiddenError(OwlatError):
    """403: the API key lacks the scope the endpoint needs."""


class NotFoundError(OwlatError):
    """404: no such contact, list or transactional email."""


class ConflictError(OwlatError):
    """409: the address is taken, or an idempotency key was reused with another body."""


class InvalidStateError(OwlatError):
    """422: it cannot be done now (`data["reason"]` says why)."""


class RateLimitError(OwlatError):
    """429: too many requests with this key; `retry_after` is the wait in seconds."""

    def __init__(self, message: str, *, retry_after: float, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.retry_after = retry_after


class NetworkError(OwlatError):
    """No answer: the connection was refused, reset or timed out."""


_BY_STATUS: dict[int, type[OwlatError]] = {
    400: ValidationError,
    401: AuthenticationError,
    402: LimitReachedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidStateError,
}


def _retry_after(response: httpx.Response, data: Mapping[str, Any]) -> float:
    for value in (data.get("retryAfter"), response.headers.get("retry-after")):
        try:
            if value is not None:
                return max(0.0, float(value))
        except (TypeError, ValueError):
            continue
    return 1.0


def error_for(response: httpx.Response) -> OwlatError:
    """The error an answer that is not 2xx raises (its body may be empty or not JSON)."""
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
    except ValueError:
        error = None
    if not isinstance(error, dict):
        error = {}
    message = str(error.get("message") or f"HTTP {response.status_code}")
    data: dict[str, Any] = error["data"] if isinstance(error.get("data"), dict) else {}
    fields: dict[str, Any] = {
        "status": response.status_code,
        "code": error.get("category"),
        "data": data,
        "rate_limit": RateLimit.from_headers(response.headers),
    }
    if response.status_code == 429:
        return RateLimitError(message, retry_after=_retry_after(response, data), **fields)
    return _BY_STATUS.get(response.status_code, OwlatError)(message, **fields)


# -- requests and retries ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How requests are retried (module docstring)."""

    max_retries: int = 2
    initial_delay: float = 0.5
    backoff_multiplier: float = 2.0
    max_retry_after: float = 30.0


@dataclasses.dataclass(frozen=True)
class _Call:
    """One API request, or the reason it is refused before it is sent."""

    method: str
    path: str
    json: Any = None
    params: Mapping[str, str] | None = None
    headers: Mapping[str, str] | None = None
    unwrap: bool = True  # answer the body's `data`
    refused: OwlatError | None = None


def _retry_delay(
    call: _Call, attempt: int, policy: RetryPolicy | None, failure: OwlatError
) -> float | None:
    """Seconds to wait before retrying `call` after `failure` (attempt 0 is the first
    request), or None: raise it."""
    if policy is None or attempt >= policy.max_retries:
        return None
    if isinstance(failure, RateLimitError):
        return min(failure.retry_after, policy.max_retry_after)
    retriable = isinstance(failure, NetworkError) or failure.status in RETRIED_STATUSES
    if retriable and call.method in IDEMPOTENT_METHODS:
        return float(policy.initial_delay * policy.backoff_multiplier**attempt)
    return None


def _result(call: _Call, response: httpx.Response) -> Any:
    """The value of a 2xx answer, or the error of any other."""
    if not response.is_success:
        raise error_for(response)
    body = response.json()
    return body["data"] if call.unwrap else body


def _network_error(error: httpx.TransportError) -> NetworkError:
    failure = NetworkError(f"No answer from the Owlat API: {error!r}")
    failure.__cause__ = error
    return failure


# -- resources ---------------------------------------------------------------------------------

R = TypeVar("R")


class _Unset:
    """A field not passed at all, as opposed to None (which clears it)."""


UNSET = _Unset()


def _fields(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not UNSET}


def _segment(value: str) -> str:
    return quote(value, safe="")


class _Resource(Generic[R]):
    def __init__(self, run: Callable[[_Call], R]) -> None:
        self._run = run


class Contacts(_Resource[R]):
    """`/api/v1/contacts`."""

    def create(
        self, email: str, *, first_name: str | None = None, last_name: str | None = None
    ) -> R:
        body = {"email": email, "firstName": first_name, "lastName": last_name}
        return self._run(
            _Call("POST", "/api/v1/contacts", {k: v for k, v in body.items() if v is not None})
        )

    def get(self, id_or_email: str) -> R:
        return self._run(_Call("GET", f"/api/v1/contacts/{_segment(id_or_email)}"))

    def update(
        self,
        id_or_email: str,
        *,
        email: str | _Unset = UNSET,
        first_name: str | _Unset | None = UNSET,
        last_name: str | _Unset | None = UNSET,
    ) -> R:
        """Change the fields passed (None clears a name)."""
        body = _fields(email=email, firstName=first_name, lastName=last_name)
        return self._run(_Call("PUT", f"/api/v1/contacts/{_segment(id_or_email)}", body))

    def delete(self, id_or_email: str) -> R:
        return self._run(_Call("DELETE", f"/api/v1/contacts/{_segment(id_or_email)}"))

    def list(
        self, *, limit: int | None = None, cursor: str | None = None, search: str | None = None
    ) -> R:
        """A page: `{data: [contact...], pagination: {limit, totalItems, cursor, isDone}}`."""
        params = {"limit": limit, "cursor": cursor, "search": search}
        query = {k: str(v) for k, v in params.items() if v is not None}
        return self._run(_Call("GET", "/api/v1/contacts", params=query, unwrap=False))


class Events(_Resource[R]):
    """`/api/v1/events`."""

    def send(
        self,
        email: str,
        event_name: str,
        *,
        event_properties: Mapping[str, Any] | None = None,
        create_contact_if_not_exists: bool | None = None,
    ) -> R:
        body = {
            "email": email,
            "eventName": event_name,
            "eventProperties": None if event_properties is None else dict(event_properties),
            "createContactIfNotExists": create_contact_if_not_exists,
        }
        return self._run(
            _Call("POST", "/api/v1/events", {k: v for k, v in body.items() if v is not None})
        )


class Topics(_Resource[R]):
    """`/api/v1/topics/{topicId}/contacts`: mailing-list membership."""

    def add_contact(
        self, topic_id: str, *, email: str | None = None, contact_id: str | None = None
    ) -> R:
        path = f"/api/v1/topics/{_segment(topic_id)}/contacts"
        if (email is None) == (contact_id is None):
            return self._run(
                _Call("POST", path, refused=ValidationError("Give one of email or contact_id"))
            )
        body = {"email": email} if email is not None else {"contactId": contact_id}
        return self._run(_Call("POST", path, body))

    def remove_contact(self, topic_id: str, email_or_id: str) -> R:
        path = f"/api/v1/topics/{_segment(topic_id)}/contacts/{_segment(email_or_id)}"
        return self._run(_Call("DELETE", path))


def attachment(
    filename: str,
    *,
    content: bytes | None = None,
    url: str | None = None,
    content_type: str | None = None,
) -> dict[str, str]:
    """An attachment for `transactional.send`: bytes (sent base64) or an https URL."""
    item = {"filename": filename}
    if content is not None:
        item["content"] = base64.b64encode(content).decode()
    if url is not None:
        item["url"] = url
    if content_type is not None:
        item["contentType"] = content_type
    return item


def attachments_problem(attachments: Sequence[Mapping[str, Any]]) -> str | None:
    """What the SDK refuses about attachments before sending them, or None."""
    if len(attachments) > MAX_ATTACHMENTS:
        return f"At most {MAX_ATTACHMENTS} attachments"
    total = 0
    for index, item in enumerate(attachments):
        at = f"attachments[{index}]"
        content, url = item.get("content"), item.get("url")
        if (content is None) == (url is None):
            return f'{at} must have exactly one of "content" (base64) or "url"'
        if url is not None and not str(url).startswith("https://"):
            return f"{at}.url must be an HTTPS URL"
        if content is not None:
            compact = "".join(str(content).split())
            if len(compact) % 4 or not _BASE64.match(compact):
                return f"{at}.content is not valid base64"
            total += len(compact) // 4 * 3 - compact.count("=")
        if str(item.get("contentType", "")).lower() in BLOCKED_TYPES:
            return f"{at}.contentType {item['contentType']} is not allowed"
    if total > MAX_ATTACHMENT_BYTES:
        return "Total attachment size exceeds 10MB limit"
    return None


class Transactional(_Resource[R]):
    """`/api/v1/transactional`."""

    def send(
        self,
        *,
        email: str,
        transactional_id: str | None = None,
        slug: str | None = None,
        data_variables: Mapping[str, Any] | None = None,
        language: str | None = None,
        attachments: Sequence[Mapping[str, Any]] | None = None,
        add_to_audience: bool | None = None,
        idempotency_key: str | None = None,
    ) -> R:
        """Queue the transactional email `transactional_id` or `slug` to `email`:
        `{status: "queued", email, transactionalEmailId (the send), slug, contactId?,
        contactCreated, language}`. With `idempotency_key`, a repeat within 24 hours
        answers the same and sends nothing."""
        problem = None
        if not transactional_id and not slug:
            problem = "Either transactional_id or slug is required"
        elif attachments:
            problem = attachments_problem(attachments)
        body = {
            "transactionalId": transactional_id,
            "slug": slug,
            "email": email,
            "dataVariables": None if data_variables is None else dict(data_variables),
            "language": language,
            "attachments": None if attachments is None else [dict(a) for a in attachments],
            "addToAudience": add_to_audience,
        }
        headers = None if idempotency_key is None else {"Idempotency-Key": idempotency_key}
        return self._run(
            _Call(
                "POST",
                "/api/v1/transactional",
                {k: v for k, v in body.items() if v is not None},
                headers=headers,
                refused=None if problem is None else ValidationError(problem),
            )
        )


# -- clients -----------------------------------------------------------------------------------


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "User-Agent": "owlat-python"}


class SyncContacts(Contacts[Any]):
    def list_all(self, *, search: str | None = None, page_size: int = 100) -> Iterator[Any]:
        """Every contact, page after page."""
        cursor = None
        while True:
            page = self.list(limit=page_size, cursor=cursor, search=search)
            yield from page["data"]
            if page["pagination"]["isDone"]:
                return
            cursor = page["pagination"]["cursor"]


class OwlatClient:
    """The synchronous client (module docstring); close it, or use it in a `with`."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout, headers=_headers(api_key))
        self._retry, self._sleep = retry, sleep
        self.contacts = SyncContacts(self._run)
        self.events: Events[Any] = Events(self._run)
        self.topics: Topics[Any] = Topics(self._run)
        self.transactional: Transactional[Any] = Transactional(self._run)

    def _run(self, call: _Call) -> Any:
        if call.refused is not None:
            raise call.refused
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    call.method, call.path, json=call.json, params=call.params,
                    headers=call.headers,
                )  # fmt: skip
                return _result(call, response)
            except httpx.TransportError as error:
                failure: OwlatError = _network_error(error)
            except OwlatError as error:
                failure = error
            delay = _retry_delay(call, attempt, self._retry, failure)
            if delay is None:
                raise failure
            self._sleep(delay)
            attempt += 1

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OwlatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncContacts(Contacts[Awaitable[Any]]):
    async def list_all(
        self, *, search: str | None = None, page_size: int = 100
    ) -> AsyncIterator[Any]:
        """Every contact, page after page."""
        cursor = None
        while True:
            page = await self.list(limit=page_size, cursor=cursor, search=search)
            for contact in page["data"]:
                yield contact
            if page["pagination"]["isDone"]:
                return
            cursor = page["pagination"]["cursor"]


class AsyncOwlatClient:
    """The asynchronous client (module docstring); `await close()`, or `async with`."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = RetryPolicy(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers=_headers(api_key)
        )
        self._retry, self._sleep = retry, sleep
        self.contacts = AsyncContacts(self._run)
        self.events: Events[Awaitable[Any]] = Events(self._run)
        self.topics: Topics[Awaitable[Any]] = Topics(self._run)
        self.transactional: Transactional[Awaitable[Any]] = Transactional(self._run)

    async def _run(self, call: _Call) -> Any:
        if call.refused is not None:
            raise call.refused
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    call.method, call.path, json=call.json, params=call.params,
                    headers=call.headers,
                )  # fmt: skip
                return _result(call, response)
            except httpx.TransportError as error:
                failure: OwlatError = _network_error(error)
            except OwlatError as error:
                failure = error
            delay = _retry_delay(call, attempt, self._retry, failure)
            if delay is None:
                raise failure
            await self._sleep(delay)
            attempt += 1

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncOwlatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
