"""Inbound provider webhooks (reference §6): one module per provider (`ses` over `sns`,
`resend`), each verifying a request and turning it into `ProviderEvent`s (`events.py`)."""
