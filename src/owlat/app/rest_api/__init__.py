"""The public REST API v1 on the site port (reference §3): contacts, events,
mailing-list membership and transactional sends, authenticated by organization API keys.

- `wire.py`: the endpoint wrapper (API key, scope, error envelope, CORS), JSON bodies,
  path segments, field checks.
- `contacts.py`, `events.py`, `topics.py`, `transactional.py`: each endpoint and the one
  internal function it runs (the organization comes from the API key, never from the
  request).
- `openapi.py`: the OpenAPI 3.1 document served at `/api/v1/openapi.json`.
- `routes.py`: the route table `http.py` registers.
"""
