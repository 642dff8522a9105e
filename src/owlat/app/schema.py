"""Every table of Owlat with its indexes.

Instance-wide tables (auth): users, accounts, sessions, verifications, rateLimits,
waitlistEntries, instanceSettings, organizations. Every other table belongs to one
organization: it has `organizationId` and a `by_org…` index (the tenancy test checks it).
Timestamps are epoch milliseconds.
"""

from __future__ import annotations

from owlat.runtime import define_schema, define_table, v

# Tables whose documents belong to one organization (deleted with it, walked by the
# tenancy test); each has `organizationId` and a `by_org` index.
ORG_TABLES = (
    "members",
    "invitations",
    "apiKeys",
    "contacts",
    "contactActivities",
    "contactProperties",
    "organizationSettings",
    "blockedEmails",
)

ROLE = v.union(v.literal("owner"), v.literal("admin"), v.literal("editor"))
CONTACT_SOURCE = v.union(
    v.literal("api"),
    v.literal("import"),
    v.literal("form"),
    v.literal("transactional"),
    v.literal("inbound"),
)
PROPERTY_TYPE = v.union(
    v.literal("string"), v.literal("number"), v.literal("boolean"), v.literal("date")
)
PROPERTY_VALUE = v.union(v.string(), v.number(), v.boolean())
BLOCK_REASON = v.union(
    v.literal("bounced"), v.literal("complained"), v.literal("manual"), v.literal("unengaged")
)

schema = define_schema(
    {
        # -- accounts and sessions (instance-wide) ----------------------------------------
        "users": define_table(
            {
                "email": v.string(),  # normalized: trimmed, lower case
                "name": v.string(),
                "emailVerified": v.boolean(),
                "image": v.optional(v.string()),
                "isPlatformAdmin": v.optional(v.boolean()),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        ).index("by_email", ["email"]),
        # Credentials: one "credential" account per user holding the argon2id hash.
        "accounts": define_table(
            {
                "userId": v.id("users"),
                "providerId": v.literal("credential"),
                "passwordHash": v.string(),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        ).index("by_user", ["userId"]),
        "sessions": define_table(
            {
                "userId": v.id("users"),
                "tokenHash": v.string(),  # SHA-256 of the cookie's token
                "expiresAt": v.number(),
                "activeOrganizationId": v.optional(v.id("organizations")),
                "ipAddress": v.optional(v.string()),
                "userAgent": v.optional(v.string()),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_token_hash", ["tokenHash"])
        .index("by_user", ["userId"])
        .index("by_active_org", ["activeOrganizationId"])
        .index("by_expires", ["expiresAt"]),
        # Emailed one-time tokens: password reset and email verification.
        "verifications": define_table(
            {
                "purpose": v.union(v.literal("reset-password"), v.literal("verify-email")),
                "tokenHash": v.string(),
                "userId": v.id("users"),
                "expiresAt": v.number(),
                "createdAt": v.number(),
            }
        )
        .index("by_token_hash", ["tokenHash"])
        .index("by_user", ["userId"])
        .index("by_expires", ["expiresAt"]),
        # Fixed-window counters and token buckets (sign-in attempts, API keys).
        "rateLimits": define_table({"key": v.string(), "value": v.number(), "since": v.number()})
        .index("by_key", ["key"])
        .index("by_since", ["since"]),
        "waitlistEntries": define_table(
            {
                "userId": v.id("users"),
                "email": v.string(),
                "status": v.union(
                    v.literal("waiting"), v.literal("approved"), v.literal("rejected")
                ),
                "decidedBy": v.optional(v.id("users")),
                "decidedAt": v.optional(v.number()),
                "createdAt": v.number(),
            }
        )
        .index("by_user", ["userId"])
        .index("by_status", ["status"]),
        # One row: instance toggles set at run time (absent fields: the config's value).
        "instanceSettings": define_table(
            {"waitlistEnabled": v.optional(v.boolean()), "updatedAt": v.number()}
        ),
        # -- organizations -----------------------------------------------------------------
        "organizations": define_table(
            {
                "name": v.string(),
                "slug": v.string(),
                "logo": v.optional(v.string()),
                "metadata": v.optional(v.string()),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        ).index("by_slug", ["slug"]),
        "members": define_table(
            {
                "organizationId": v.id("organizations"),
                "userId": v.id("users"),
                "role": ROLE,
                "createdAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_and_user", ["organizationId", "userId"])
        .index("by_user", ["userId"]),
        "invitations": define_table(
            {
                "organizationId": v.id("organizations"),
                "email": v.string(),
                "role": ROLE,
                "status": v.union(
                    v.literal("pending"),
                    v.literal("accepted"),
                    v.literal("rejected"),
                    v.literal("canceled"),
                ),
                "inviterId": v.id("users"),
                "expiresAt": v.number(),
                "lastSentAt": v.number(),
                "createdAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_and_email", ["organizationId", "email"])
        .index("by_email", ["email"]),
        "apiKeys": define_table(
            {
                "organizationId": v.id("organizations"),
                "name": v.string(),
                "keyHash": v.string(),  # SHA-256 hex of the whole key
                "keyPrefix": v.string(),  # first 16 characters, for display
                "scopes": v.array(v.string()),
                "createdBy": v.id("users"),
                "isActive": v.boolean(),
                "lastUsedAt": v.optional(v.number()),
                "revokedAt": v.optional(v.number()),
                "expiresAt": v.optional(v.number()),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_key_hash", ["keyHash"]),
        # -- audience ----------------------------------------------------------------------
        "contacts": define_table(
            {
                "organizationId": v.id("organizations"),
                "email": v.string(),  # normalized: trimmed, lower case
                "firstName": v.optional(v.string()),
                "lastName": v.optional(v.string()),
                # lower-case "first last" and "last", for search by name prefix
                "nameKey": v.optional(v.string()),
                "lastNameKey": v.optional(v.string()),
                "source": CONTACT_SOURCE,
                "language": v.optional(v.string()),
                "timezone": v.optional(v.string()),
                # custom property values by property key (typed by contactProperties;
                # dates are epoch milliseconds)
                "properties": v.record(v.string(), PROPERTY_VALUE),
                "unsubscribedAt": v.optional(v.number()),
                "deletedAt": v.optional(v.number()),  # soft delete; purged after 30 days
                "deletedBy": v.optional(v.id("users")),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_email", ["organizationId", "email"])
        .index("by_org_created", ["organizationId", "createdAt"])
        .index("by_deleted_at", ["deletedAt"]),
        "contactActivities": define_table(
            {
                "organizationId": v.id("organizations"),
                "contactId": v.id("contacts"),
                "activityType": v.union(
                    v.literal("created"),
                    v.literal("updated"),
                    v.literal("property_updated"),
                    v.literal("unsubscribed"),
                    v.literal("deleted"),
                    v.literal("subscribed"),
                ),
                "metadata": v.optional(v.record(v.string(), v.string())),
                "userId": v.optional(v.id("users")),
                "occurredAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_contact", ["contactId", "occurredAt"]),
        "contactProperties": define_table(
            {
                "organizationId": v.id("organizations"),
                "key": v.string(),  # immutable: lower-case letters, digits, underscores
                "label": v.string(),
                "type": PROPERTY_TYPE,  # immutable
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_key", ["organizationId", "key"]),
        "organizationSettings": define_table(
            {
                "organizationId": v.id("organizations"),
                "defaultFromName": v.optional(v.string()),
                "defaultFromEmail": v.optional(v.string()),
                "replyToEmail": v.optional(v.string()),
                "postalAddress": v.optional(v.string()),
                "timezone": v.optional(v.string()),  # IANA name
                "brandTheme": v.optional(
                    v.object(
                        {
                            "primaryColor": v.optional(v.string()),
                            "backgroundColor": v.optional(v.string()),
                            "textColor": v.optional(v.string()),
                            "logoUrl": v.optional(v.string()),
                        }
                    )
                ),
                "updatedBy": v.optional(v.id("users")),
                "updatedAt": v.number(),
            }
        ).index("by_org", ["organizationId"]),
        # The suppression list: no marketing mail goes to these addresses.
        "blockedEmails": define_table(
            {
                "organizationId": v.id("organizations"),
                "email": v.string(),  # normalized
                "reason": BLOCK_REASON,
                "bounceType": v.optional(v.union(v.literal("hard"), v.literal("soft"))),
                "notes": v.optional(v.string()),
                "createdBy": v.optional(v.id("users")),
                "createdAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_email", ["organizationId", "email"])
        .index("by_org_reason", ["organizationId", "reason"]),
    }
)
