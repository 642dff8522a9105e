"""Outgoing webhooks (reference §5): events, fan-out, signed delivery to checked targets."""
