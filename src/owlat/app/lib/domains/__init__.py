"""Sending and tracking domains (§2.6, §12): the library under `domains:*`,
`dnsVerification:*` and `sesActions:*`. No database here; the app functions store what these
modules compute.

- `names`: a typed domain → its stored ASCII form, or a precise `INVALID_DOMAIN` error.
- `records`: the DNS records to publish per provider (SES, SMTP relay / own MTA), tracking CNAME.
- `dkim_keys`: DKIM key pairs Owlat generates when it signs itself; selector names.
- `txt`: SPF terms and merging, DKIM/DMARC tag lists.
- `verification`: each record looked up in DNS and compared → a result with a reason.
- `states`: the domain lifecycle and the verdict of a verification run (next state, next check).
- `ses_identity`: the domain's identity at SES (register, check, delete).
- `sender_check`: may an organization send From an address.
"""
