"""Campaigns: one message to a frozen audience, sent crash-safe and fast (reference §11).

    states.py     the campaign status machine (§11.1, plus `paused`), no I/O
    drafts.py     cleaning a draft's fields, preflight, reading audiences
    walk.py       start: freeze the audience, then walk it in keyset pages, one mutation
                  per page creating that page's `emailSends` rows with its cursor
    delivery.py   workers: claim a batch of queued sends in one mutation, personalize,
                  compose and send them through the route's providers, record the batch
                  in one mutation; recovery of work a crash interrupted

Delivery is at most once per (campaign, contact), with the rule of `sending/sends.py`: a
send is `sending` (committed) before its provider call; one left so by a crash is sent
again only through providers that dedupe by key, otherwise failed DELIVERY_UNCERTAIN.
"""
