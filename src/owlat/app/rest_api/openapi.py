"""The OpenAPI 3.1 document of the REST API v1, served at `GET /api/v1/openapi.json`.

It describes every route: parameters, request bodies, each answer (with the error envelope
and the rate headers of authenticated answers) and the bearer API-key scheme.
`tests/app/test_rest_api_schemathesis.py` checks the live server against it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from owlat.app.lib.sending.attachments import MAX_ATTACHMENTS, MAX_FILENAME
from owlat.app.rest_api.contacts import MAX_LIMIT
from owlat.app.rest_api.events import EVENT_NAME, MAX_PROPERTIES, MAX_STRING
from owlat.app.rest_api.transactional import LANGUAGE
from owlat.app.rest_api.wire import FIELD_NAME
from owlat.runtime import ActionCtx, JSONResponse

NULLABLE_STRING = {"type": ["string", "null"]}
EMAIL = {"type": "string", "format": "email", "maxLength": 254}
NAME = {"type": ["string", "null"], "maxLength": 200}
ISO = {"type": "string", "format": "date-time"}
ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{10,}$"}

RATE_HEADERS = {
    "X-RateLimit-Limit": {"$ref": "#/components/headers/RateLimitLimit"},
    "X-RateLimit-Remaining": {"$ref": "#/components/headers/RateLimitRemaining"},
    "X-RateLimit-Reset": {"$ref": "#/components/headers/RateLimitReset"},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _data(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["data"],
        "properties": {"data": schema},
    }


def _answer(description: str, schema: dict[str, Any], *, rated: bool = True) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if rated:
        answer["headers"] = RATE_HEADERS
    return answer


def _errors(*statuses: int) -> dict[str, Any]:
    names = {
        400: "InvalidInput",
        401: "Unauthenticated",
        403: "Forbidden",
        404: "NotFound",
        409: "AlreadyExists",
        422: "InvalidState",
        429: "RateLimited",
    }
    codes = (400, 401, 403, *statuses, 429)
    return {str(code): {"$ref": f"#/components/responses/{names[code]}"} for code in codes}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _path_parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1},
    }


def _topic_paths(base: str, tag: str) -> dict[str, Any]:
    list_id = _path_parameter("listId", "The mailing list's id")
    member = _path_parameter("emailOrId", "The contact's email address or id")
    prefix = "" if base == "topics" else "MailingList"
    return {
        f"/api/v1/{base}/{{listId}}/contacts": {
            "post": {
                "operationId": f"subscribe{prefix}Contact",
                "summary": "Subscribe an existing contact to a mailing list",
                "tags": [tag],
                "security": [{"bearerAuth": []}],
                "parameters": [list_id],
                "requestBody": _body(_ref("SubscribeInput")),
                "responses": {
                    "201": _answer(
                        "Subscribed (also when already a member)", _data(_ref("Subscribed"))
                    ),
                    **_errors(404),
                },
            }
        },
        f"/api/v1/{base}/{{listId}}/contacts/{{emailOrId}}": {
            "delete": {
                "operationId": f"unsubscribe{prefix}Contact",
                "summary": "Remove a contact from a mailing list (idempotent)",
                "tags": [tag],
                "security": [{"bearerAuth": []}],
                "parameters": [list_id, member],
                "responses": {
                    "200": _answer("Removed, or was not a member", _data(_ref("Unsubscribed"))),
                    **_errors(404),
                },
            }
        },
    }


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message"],
                "properties": {
                    "category": {
                        "type": "string",
                        "enum": [
                            "invalid_input",
                            "unauthenticated",
                            "forbidden",
                            "not_found",
                            "already_exists",
                            "conflict",
                            "invalid_state",
                            "rate_limited",
                            "internal",
                        ],
                    },
                    "message": {"type": "string"},
                    "data": {
                        "type": "object",
                        "properties": {
                            "reason": {"type": "string", "description": "Why it was refused"}
                        },
                    },
                },
            }
        },
    },
    "Contact": {
        "type": "object",
        "required": ["id", "email", "firstName", "lastName", "source", "createdAt", "updatedAt"],
        "properties": {
            "id": ID,
            "email": {"type": "string"},
            "firstName": NULLABLE_STRING,
            "lastName": NULLABLE_STRING,
            "source": {
                "type": "string",
                "enum": ["api", "import", "form", "transactional", "inbound"],
            },
            "createdAt": ISO,
            "updatedAt": ISO,
        },
    },
    "ContactList": {
        "type": "object",
        "required": ["data", "pagination"],
        "properties": {
            "data": {"type": "array", "items": _ref("Contact")},
            "pagination": {
                "type": "object",
                "required": ["limit", "totalItems", "cursor", "isDone"],
                "properties": {
                    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                    "totalItems": {"type": "integer", "minimum": 0},
                    "cursor": NULLABLE_STRING,
                    "isDone": {"type": "boolean"},
                },
            },
        },
    },
    "ContactInput": {
        "type": "object",
        "required": ["email"],
        "properties": {"email": EMAIL, "firstName": NAME, "lastName": NAME},
    },
    "ContactChanges": {
        "type": "object",
        "properties": {"email": EMAIL, "firstName": NAME, "lastName": NAME},
    },
    "Deleted": {
        "type": "object",
        "required": ["id", "deleted"],
        "properties": {"id": ID, "deleted": {"type": "boolean", "const": True}},
    },
    "EventInput": {
        "type": "object",
        "required": ["email", "eventName"],
        "properties": {
            "email": EMAIL,
            "eventName": {"type": "string", "pattern": EVENT_NAME.pattern},
            "eventProperties": {
                "type": "object",
                "maxProperties": MAX_PROPERTIES,
                "propertyNames": {"pattern": FIELD_NAME.pattern},
                "additionalProperties": {
                    "oneOf": [
                        {"type": "string", "maxLength": MAX_STRING},
                        {"type": "number", "minimum": -(2**53), "maximum": 2**53},
                        {"type": "boolean"},
                        {"type": "null"},
                    ]
                },
            },
            "createContactIfNotExists": {"type": "boolean", "default": False},
        },
    },
    "EventRecorded": {
        "type": "object",
        "required": [
            "eventId",
            "contactId",
            "eventName",
            "triggeredAutomations",
            "contactCreated",
        ],
        "properties": {
            "eventId": {"type": "string", "pattern": "^evt_[0-9a-z]+$"},
            "contactId": ID,
            "eventName": {"type": "string"},
            "triggeredAutomations": {"type": "integer", "minimum": 0},
            "contactCreated": {"type": "boolean"},
        },
    },
    "TransactionalInput": {
        "type": "object",
        "description": "One of transactionalId or slug",
        "required": ["email"],
        "properties": {
            "transactionalId": {"type": "string", "minLength": 1},
            "slug": {"type": "string", "pattern": "^[a-z0-9]+(?:-[a-z0-9]+)*$"},
            "email": EMAIL,
            "dataVariables": {
                "type": "object",
                "description": "Values for the email's placeholders (checked against its schema)",
                "propertyNames": {"pattern": FIELD_NAME.pattern},
            },
            "language": {"type": "string", "pattern": LANGUAGE.pattern},
            "addToAudience": {
                "type": "boolean",
                "default": True,
                "description": "Create a contact (source transactional) for a new address",
            },
            "attachments": {
                "type": "array",
                "maxItems": MAX_ATTACHMENTS,
                "items": {
                    "type": "object",
                    "description": "Exactly one of content (base64) or url (https); "
                    "at most 10 MB together",
                    "required": ["filename"],
                    "properties": {
                        "filename": {"type": "string", "minLength": 1, "maxLength": MAX_FILENAME},
                        "content": {"type": "string", "contentEncoding": "base64"},
                        "url": {"type": "string", "format": "uri", "pattern": "^https://"},
                        "contentType": {"type": "string"},
                    },
                },
            },
        },
    },
    "TransactionalQueued": {
        "type": "object",
        "required": [
            "status",
            "email",
            "transactionalEmailId",
            "slug",
            "contactCreated",
            "language",
        ],
        "properties": {
            "status": {"const": "queued"},
            "email": {"type": "string"},
            "transactionalEmailId": {"type": "string", "description": "The send's id"},
            "slug": {"type": "string", "description": "The request's slug, or empty"},
            "contactId": ID,
            "contactCreated": {"type": "boolean"},
            "language": {"type": "string"},
        },
    },
    "SubscribeInput": {
        "type": "object",
        "description": "One of email or contactId",
        "properties": {"email": EMAIL, "contactId": ID},
    },
    "Subscribed": {
        "type": "object",
        "required": ["success", "contactId", "topicId", "doiStatus"],
        "properties": {
            "success": {"type": "boolean", "const": True},
            "contactId": ID,
            "topicId": ID,
            "doiStatus": {"type": "string", "enum": ["not_required", "pending", "confirmed"]},
        },
    },
    "Unsubscribed": {
        "type": "object",
        "required": ["success", "removed"],
        "properties": {
            "success": {"type": "boolean", "const": True},
            "removed": {"type": "boolean"},
        },
    },
}

_ERROR = _ref("Error")
RESPONSES = {
    "InvalidInput": _answer("The request is not valid (category invalid_input)", _ERROR),
    "Unauthenticated": _answer(
        "Missing, malformed, unknown, revoked or expired API key", _ERROR, rated=False
    ),
    "Forbidden": _answer("The API key lacks the scope the endpoint needs", _ERROR),
    "NotFound": _answer("Not found (also for another organization's documents)", _ERROR),
    "AlreadyExists": _answer(
        "A live contact already has that email address; an Idempotency-Key reused with "
        "another body (category conflict)",
        _ERROR,
    ),
    "InvalidState": _answer(
        "The request cannot be carried out now (category invalid_state; data.reason says why)",
        _ERROR,
    ),
    "RateLimited": {
        **_answer("More than 10 requests per second (burst 15) with this key", _ERROR),
        "headers": {
            **RATE_HEADERS,
            "Retry-After": {
                "description": "Seconds to wait",
                "required": True,
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            },
        },
    },
}

HEADERS = {
    "RateLimitLimit": {
        "description": "Requests per second allowed for the key (10)",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "RateLimitRemaining": {
        "description": "Approximate requests left this second",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "RateLimitReset": {
        "description": "Unix time (seconds) when the bucket refills",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
}

_ID_OR_EMAIL = _path_parameter(
    "idOrEmail", "The contact's id, or its email address (percent-encoded)"
)
_AUTH: list[dict[str, list[str]]] = [{"bearerAuth": []}]

PATHS: dict[str, Any] = {
    "/api/v1/health": {
        "get": {
            "operationId": "health",
            "summary": "Liveness check (no API key)",
            "tags": ["health"],
            "security": [],
            "responses": {
                "200": _answer(
                    "The API is up",
                    {
                        "type": "object",
                        "required": ["status", "timestamp"],
                        "properties": {"status": {"const": "ok"}, "timestamp": ISO},
                    },
                    rated=False,
                )
            },
        }
    },
    "/api/v1/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document (no API key)",
            "tags": ["health"],
            "security": [],
            "responses": {
                "200": _answer("The OpenAPI 3.1 document", {"type": "object"}, rated=False)
            },
        }
    },
    "/api/v1/contacts": {
        "get": {
            "operationId": "listContacts",
            "summary": "Live contacts, newest first (scope contacts:read)",
            "tags": ["contacts"],
            "security": _AUTH,
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "description": f"Page size (default 25; above {MAX_LIMIT} is {MAX_LIMIT})",
                    "schema": {"type": "integer", "minimum": 1},
                },
                {
                    "name": "cursor",
                    "in": "query",
                    "description": "`pagination.cursor` of the previous page",
                    "schema": {"type": "string"},
                },
                {
                    "name": "search",
                    "in": "query",
                    "description": "Case-insensitive prefix of the email, full name or last name",
                    "schema": {"type": "string"},
                },
            ],
            "responses": {"200": _answer("A page of contacts", _ref("ContactList")), **_errors()},
        },
        "post": {
            "operationId": "createContact",
            "summary": "Create a contact with source api (scope contacts:write)",
            "tags": ["contacts"],
            "security": _AUTH,
            "requestBody": _body(_ref("ContactInput")),
            "responses": {
                "201": _answer("The new contact", _data(_ref("Contact"))),
                **_errors(409),
            },
        },
    },
    "/api/v1/contacts/{idOrEmail}": {
        "get": {
            "operationId": "getContact",
            "summary": "One contact (scope contacts:read)",
            "tags": ["contacts"],
            "security": _AUTH,
            "parameters": [_ID_OR_EMAIL],
            "responses": {
                "200": _answer("The contact", _data(_ref("Contact"))),
                **_errors(404),
            },
        },
        "put": {
            "operationId": "updateContact",
            "summary": "Change email, firstName or lastName (scope contacts:write)",
            "tags": ["contacts"],
            "security": _AUTH,
            "parameters": [_ID_OR_EMAIL],
            "requestBody": _body(_ref("ContactChanges")),
            "responses": {
                "200": _answer("The contact after the change", _data(_ref("Contact"))),
                **_errors(404, 409),
            },
        },
        "delete": {
            "operationId": "deleteContact",
            "summary": "Hard-delete a contact with its timeline and events (scope contacts:write)",
            "tags": ["contacts"],
            "security": _AUTH,
            "parameters": [_ID_OR_EMAIL],
            "responses": {
                "200": _answer("Deleted", _data(_ref("Deleted"))),
                **_errors(404),
            },
        },
    },
    "/api/v1/events": {
        "post": {
            "operationId": "sendEvent",
            "summary": "Record an event of a contact (scope events:write)",
            "tags": ["events"],
            "security": _AUTH,
            "requestBody": _body(_ref("EventInput")),
            "responses": {
                "201": _answer("The stored event", _data(_ref("EventRecorded"))),
                **_errors(404),
            },
        }
    },
    "/api/v1/transactional": {
        "post": {
            "operationId": "sendTransactional",
            "summary": "Queue a transactional email to one address (scope transactional:send)",
            "tags": ["transactional"],
            "security": _AUTH,
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "Replays the first answer for 24 hours (same body)",
                    "schema": {"type": "string", "pattern": "^[ -~]{1,255}$"},
                }
            ],
            "requestBody": _body(_ref("TransactionalInput")),
            "responses": {
                "202": _answer("Recorded and queued", _data(_ref("TransactionalQueued"))),
                **_errors(404, 409, 422),
            },
        }
    },
    **_topic_paths("topics", "topics"),
    **_topic_paths("mailing-lists", "mailing lists"),
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Owlat REST API",
        "version": "1.0.0",
        "description": (
            "Contacts, events, mailing-list membership and transactional email of one "
            "organization, chosen by "
            "the API key. Errors are {error: {category, message}}; authenticated answers "
            "carry X-RateLimit-* headers (10 requests/s per key, burst 15)."
        ),
    },
    "servers": [{"url": "/"}],
    "security": _AUTH,
    "paths": PATHS,
    "components": {
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "An organization API key: Authorization: Bearer lm_live_…",
            }
        },
        "schemas": SCHEMAS,
        "responses": RESPONSES,
        "headers": HEADERS,
    },
}


async def document(ctx: ActionCtx, request: Request) -> Response:
    return JSONResponse(DOCUMENT)
