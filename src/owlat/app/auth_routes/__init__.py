"""The `/api/auth/*` endpoints: BetterAuth's paths, JSON shapes, cookie and error bodies
(reference: betterauth-wire.md), so that BetterAuth's own client works against Owlat."""
