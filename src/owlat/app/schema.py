"""Every table of Owlat with its indexes.

Instance-wide tables (auth): users, accounts, sessions, verifications, rateLimits,
waitlistEntries, instanceSettings, organizations; webhookPayloads (raw provider bodies).
Every other table belongs to one organization: it has `organizationId` and a `by_org…`
index (the tenancy test checks it). Timestamps are epoch milliseconds.
"""

from __future__ import annotations

from owlat.runtime import define_schema, define_table, v

# Tables whose documents belong to one organization (deleted with it, walked by the
# tenancy test); each has `organizationId` and a `by_org` index.
ORG_TABLES = (
    "members",
    "invitations",
    "apiKeys",
    # before contacts: deleting contacts then fans out no contact.deleted webhooks
    "webhookDeliveryLogs",
    "webhooks",
    # automations (app/automations.py), before contacts: no run outlives its contact
    "automationRuns",
    "automationStats",
    "automations",
    # forms (app/form_endpoints.py)
    "formSubmissions",
    "formEndpoints",
    # before contacts: deleting contacts then records no segment count changes
    "segmentCounts",
    "segmentCountTotals",
    "segmentCountDeltas",
    "contacts",
    "contactActivities",
    "contactProperties",
    "organizationSettings",
    "blockedEmails",
    "mailingLists",
    "mailingListMembers",
    "segments",
    "contactImports",
    "contactImportErrors",
    "events",
    "emailTemplates",
    "emailTemplateVersions",
    "transactionalEmails",
    "transactionalCounts",
    "transactionalProfiles",
    "emailBlocks",
    "mediaAssets",
    "shareLinks",
    "domains",
    "trackingDomains",
    "emailProviders",
    "providerRoutes",
    "providerHealth",
    "transactionalSends",
    "apiIdempotencyKeys",
    "sendQueues",
    "sendBodies",
    "sendContents",
    # campaigns (lib/campaigns/)
    "campaigns",
    "campaignSendJobs",
    "campaignStats",
    "campaignContents",
    "campaignSenders",
    "emailSends",
    # content scans of transactional emails and campaigns (lib/content_scans.py)
    "contentScanResults",
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
DOI_STATUS = v.union(v.literal("not_required"), v.literal("pending"), v.literal("confirmed"))
SUBSCRIBE_SOURCE = v.union(
    v.literal("admin"),
    v.literal("form"),
    v.literal("import"),
    v.literal("public_api"),
    v.literal("automation"),
    v.literal("preferences_page"),
)
EVENT_PROPERTY_VALUE = v.union(v.string(), v.number(), v.boolean(), v.null())
TEMPLATE_TYPE = v.union(v.literal("marketing"), v.literal("transactional"))
AUTOMATION_TRIGGER = v.union(
    v.literal("contact_created"),
    v.literal("contact_updated"),
    v.literal("event_received"),
    v.literal("list_subscribed"),
)
TEMPLATE_STATUS = v.union(v.literal("draft"), v.literal("published"))
# a transactional email's: `pending_review` when the content scan found it suspicious
TRANSACTIONAL_STATUS = v.union(
    v.literal("draft"), v.literal("published"), v.literal("pending_review")
)
VERSION_TRIGGER = v.union(v.literal("save"), v.literal("publish"), v.literal("send"))
BLOCK_REASON = v.union(
    v.literal("bounced"), v.literal("complained"), v.literal("manual"), v.literal("unengaged")
)
PROVIDER_KIND = v.union(
    v.literal("outbox"), v.literal("smtp"), v.literal("ses"), v.literal("resend")
)
DOMAIN_STATUS = v.union(
    v.literal("registering"), v.literal("pending"), v.literal("verified"), v.literal("failed")
)
ABUSE_STATUS = v.union(*(v.literal(s) for s in ("clean", "warned", "suspended", "banned")))
DMARC_MODE = v.union(v.literal("none"), v.literal("quarantine"), v.literal("reject"))
MESSAGE_TYPE = v.union(
    v.literal("campaign"), v.literal("transactional"), v.literal("automation"), v.literal("test")
)
ROUTE_STRATEGY = v.union(
    v.literal("single"), v.literal("priority_failover"), v.literal("workload_split")
)
SEND_STATUSES = (
    "queued", "sending", "sent", "delivered", "opened", "clicked", "bounced", "complained",
    "failed",
)  # fmt: skip
SEND_STATUS = v.union(*(v.literal(status) for status in SEND_STATUSES))
CAMPAIGN_STATUSES = (
    "draft", "scheduled", "sending", "paused", "sent", "cancelled", "pending_review",
)  # fmt: skip
CAMPAIGN_STATUS = v.union(*(v.literal(status) for status in CAMPAIGN_STATUSES))
CAMPAIGN_AUDIENCE = v.union(
    v.object({"kind": v.literal("list"), "listId": v.id("mailingLists")}),
    v.object(
        {
            "kind": v.literal("segment"),
            "segmentId": v.id("segments"),
            "frozenFilters": v.optional(v.any()),
        }
    ),
)
BOUNCE_TYPE = v.union(v.literal("hard"), v.literal("soft"))
AB_VARIANT = v.union(v.literal("A"), v.literal("B"))
# A campaign's A/B test (reference §2.2, §11.3; lib/campaigns/ab_tests.py)
AB_TEST_CONFIG = v.object(
    {
        "testType": v.union(v.literal("subject"), v.literal("content")),
        "variantBSubject": v.optional(v.string()),
        "variantBTemplateId": v.optional(v.id("emailTemplates")),
        "splitPercentage": v.number(),  # 10–50: each variant's share of the audience
        "winnerCriteria": v.union(
            v.literal("open_rate"), v.literal("click_rate"), v.literal("manual")
        ),
        "testDuration": v.optional(v.number()),  # hours before the automatic winner
    }
)
# One record of a domain's `dnsRecords` document (lib/domains/records.py).
DNS_RECORD = v.object(
    {
        "type": v.union(v.literal("TXT"), v.literal("CNAME"), v.literal("MX")),
        "host": v.string(),
        "value": v.string(),
        "priority": v.optional(v.number()),
        "note": v.optional(v.string()),
    }
)

# The fields of a template rendered on every save (lib/templates.py), shared by email
# templates and transactional emails. `content` is the JSON of upstream's EditorBlock[]
# (lib/rendering validates it); `htmlContent`/`plainTextContent` are rendered from it with
# the organization's theme (placeholders and condition markers kept: personalized per
# recipient). Translations are JSON too: {lang: {subject, previewText?, blocks: {blockId:
# {html?, buttonText?, alt?}}}}, rendered into `htmlTranslations`.
RENDERED_TEMPLATE = {
    "organizationId": v.id("organizations"),
    "name": v.string(),
    "subject": v.string(),
    "previewText": v.optional(v.string()),
    "content": v.string(),
    "htmlContent": v.optional(v.string()),
    "plainTextContent": v.optional(v.string()),
    "plainTextOverride": v.optional(v.string()),
    "publishedAt": v.optional(v.number()),
    "showUnsubscribe": v.optional(v.boolean()),
    "defaultLanguage": v.optional(v.string()),
    "supportedLanguages": v.optional(v.array(v.string())),
    "translations": v.optional(v.string()),
    # {lang: {htmlContent, plainTextContent, subject, previewText?}}
    "htmlTranslations": v.optional(v.string()),
    # saved blocks the content links (savedBlockRef), derived on every save
    "linkedBlockIds": v.optional(v.array(v.id("emailBlocks"))),
    "contentBlockVersion": v.optional(v.number()),
    "rendererVersion": v.optional(v.number()),
    # stale: a linked saved block changed and the HTML is not rendered yet
    # (lib/saved_blocks.py); failureCount: re-renders that failed since
    "htmlRenderState": v.optional(
        v.object(
            {
                "stale": v.boolean(),
                "failureCount": v.number(),
                "lastFailureAt": v.optional(v.number()),
                "error": v.optional(v.string()),
            }
        )
    ),
    # top-level variables the rendered template reads (for senders)
    "variables": v.optional(v.array(v.string())),
    "searchableText": v.optional(v.string()),  # name and subject, lower case
    "createdBy": v.optional(v.id("users")),
    "updatedBy": v.optional(v.id("users")),
    "createdAt": v.number(),
    "updatedAt": v.number(),
}
# The type of a transactional email's data variable (checked on each API request).
VARIABLE_TYPE = v.union(
    v.literal("string"), v.literal("number"), v.literal("boolean"), v.literal("date")
)
# A file a message carries: a stored file (`storageId`) or an https URL fetched when it is
# sent (lib/sending/attachments.py).
ATTACHMENT = v.object(
    {
        "filename": v.string(),
        "contentType": v.optional(v.string()),
        "storageId": v.optional(v.id("_storage")),
        "url": v.optional(v.string()),
        "size": v.optional(v.number()),  # bytes, when known before sending
    }
)
# A data variable of a transactional send: a JSON value (lists feed repeated blocks).
DATA_VARIABLE = v.any()

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
                # set when its deletion starts: the job's place (lib/organization_deletion.py)
                "deletion": v.optional(
                    v.object(
                        {
                            "startedAt": v.number(),
                            "table": v.string(),  # the one being deleted
                            "found": v.boolean(),  # rows deleted in this pass
                            "updatedAt": v.number(),
                        }
                    )
                ),
            }
        )
        .index("by_slug", ["slug"])
        .index("by_deletion", ["deletion.updatedAt"]),
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
                # double opt-in: absent means "not_required"; the token is stored hashed
                "doiStatus": v.optional(DOI_STATUS),
                "doiTokenHash": v.optional(v.string()),
                "doiTokenExpiresAt": v.optional(v.number()),
                "doiConfirmedAt": v.optional(v.number()),
                # ids of the mailing lists the contact is a member of (a copy of
                # mailingListMembers kept in the same transaction, for segment filters)
                "mailingListIds": v.optional(v.array(v.id("mailingLists"))),
                # monotonic engagement flags (set by open/click tracking)
                "hasOpened": v.optional(v.boolean()),
                "hasClicked": v.optional(v.boolean()),
                # consecutive soft bounces (reset by a delivery; 5 suppress the address)
                "softBounceCount": v.optional(v.number()),
                # the import that created the contact: its timeline's `imported` entry
                # (lib/activities.timeline_page), not a stored activity
                "importId": v.optional(v.id("contactImports")),
                "deletedAt": v.optional(v.number()),  # soft delete; purged after 30 days
                "deletedBy": v.optional(v.id("users")),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_email", ["organizationId", "email"])
        .index("by_org_created", ["organizationId", "createdAt"])
        .index("by_org_name_key", ["organizationId", "nameKey"])
        .index("by_org_last_name_key", ["organizationId", "lastNameKey"])
        .index("by_deleted_at", ["deletedAt"])
        .index("by_doi_token", ["doiTokenHash"]),
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
                    v.literal("list_subscribed"),
                    v.literal("list_unsubscribed"),
                    v.literal("list_confirmed"),
                    v.literal("doi_attested"),
                    v.literal("imported"),
                    v.literal("event_received"),
                    v.literal("email_opened"),
                    v.literal("email_clicked"),
                    v.literal("email_bounced"),
                    v.literal("email_complained"),
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
                # set by remove while values are cleared from contacts in batches; the
                # definition is then hidden, and deleted with the last batch
                "purging": v.optional(v.boolean()),
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
                # open and click tracking (lib/tracking): of marketing sends (campaigns,
                # automations) unless `tracking` is false; of transactional sends only when
                # `trackTransactional` is true
                "tracking": v.optional(v.boolean()),
                "trackTransactional": v.optional(v.boolean()),
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
                # set by the deployment's admin only (lib/sending/intake.py): suspended or
                # banned organizations send nothing
                "abuseStatus": v.optional(ABUSE_STATUS),
                "abuseStatusReason": v.optional(v.string()),
                "abuseStatusChangedAt": v.optional(v.number()),
                "abuseStatusChangedBy": v.optional(v.string()),
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
                # "<send table>:<send id>" of the bounce or complaint that added it
                "sourceSendId": v.optional(v.string()),
                "createdBy": v.optional(v.id("users")),
                "createdAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_email", ["organizationId", "email"])
        .index("by_org_reason", ["organizationId", "reason"]),
        "mailingLists": define_table(
            {
                "organizationId": v.id("organizations"),
                "name": v.string(),
                "description": v.optional(v.string()),
                "requireDoubleOptIn": v.boolean(),  # defaults to true on create
                "isDefault": v.optional(v.boolean()),
                "displayOrder": v.optional(v.number()),
                # live members (confirmed or not requiring DOI), kept in each membership
                # change's own transaction
                "memberCount": v.number(),
                "pendingCount": v.number(),  # memberships waiting for DOI confirmation
                # set when deleted: hidden at once, memberships removed in batches
                "deletedAt": v.optional(v.number()),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_name", ["organizationId", "name"]),
        "mailingListMembers": define_table(
            {
                "organizationId": v.id("organizations"),
                "listId": v.id("mailingLists"),
                "contactId": v.id("contacts"),
                "status": v.union(v.literal("subscribed"), v.literal("pending")),
                "source": SUBSCRIBE_SOURCE,
                "addedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_list", ["listId", "addedAt"])
        .index("by_list_contact", ["listId", "contactId"])
        .index("by_contact", ["contactId"]),
        "segments": define_table(
            {
                "organizationId": v.id("organizations"),
                "name": v.string(),
                "description": v.optional(v.string()),
                # the condition tree (segment_filters.py validates it; nested AND/OR)
                "filters": v.any(),
                "createdBy": v.optional(v.id("users")),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_name", ["organizationId", "name"]),
        # Maintained segment counts (segment_counts.py). A segment without relative dates
        # has one segmentCounts row (what triggers read: rarely written, so contact writes
        # do not conflict with counting), one segmentCountTotals row (the counted base and
        # the backfill's position) and segmentCountDeltas rows (written blind by the
        # contacts trigger, folded into the base by the backfill and a cron).
        "segmentCounts": define_table(
            {
                "organizationId": v.id("organizations"),
                "segmentId": v.id("segments"),
                "filters": v.any(),
                "state": v.union(v.literal("counting"), v.literal("ready")),
                "createdAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_segment", ["segmentId"])
        .index("by_state", ["state"]),
        "segmentCountTotals": define_table(
            {
                "organizationId": v.id("organizations"),
                "countId": v.id("segmentCounts"),
                "base": v.number(),
                # while counting: contacts created at or after this were counted
                # (the backfill walks from the newest down); absent: none yet
                "cursor": v.optional(v.number()),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_count", ["countId"]),
        "segmentCountDeltas": define_table(
            {
                "organizationId": v.id("organizations"),
                "countId": v.id("segmentCounts"),
                "delta": v.number(),
                # while counting: the changed contact's _creationTime (the backfill
                # applies the delta only if it had already counted that contact)
                "contactCreated": v.optional(v.number()),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_count", ["countId"]),
        # CSV imports: one document per run, progress updated per batch
        "contactImports": define_table(
            {
                "organizationId": v.id("organizations"),
                "storageId": v.id("_storage"),
                "fileName": v.optional(v.string()),
                # CSV column name -> "email" | "firstName" | ... | "property:<key>" | "skip"
                "mapping": v.record(v.string(), v.string()),
                "listId": v.optional(v.id("mailingLists")),
                "onDuplicate": v.union(v.literal("skip"), v.literal("update")),
                "status": v.union(
                    v.literal("queued"),
                    v.literal("running"),
                    v.literal("completed"),
                    v.literal("failed"),
                    v.literal("canceled"),
                ),
                "totalRows": v.optional(v.number()),
                "rowsDone": v.number(),
                "byteOffset": v.number(),  # where the next batch starts in the file
                # the generation of the worker that may advance it (absent: 0); resuming an
                # import starts the next one, and an older worker stops
                "worker": v.optional(v.number()),
                "imported": v.number(),
                "updated": v.number(),
                "skipped": v.number(),
                "failed": v.number(),
                "error": v.optional(v.string()),
                "createdBy": v.optional(v.id("users")),
                "createdAt": v.number(),
                "updatedAt": v.number(),
                "finishedAt": v.optional(v.number()),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_created", ["organizationId", "createdAt"])
        .index("by_status_updated", ["status", "updatedAt"]),
        "contactImportErrors": define_table(
            {
                "organizationId": v.id("organizations"),
                "importId": v.id("contactImports"),
                "row": v.number(),  # 1-based data row (the header is row 0)
                "column": v.optional(v.string()),
                "reason": v.string(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_import", ["importId", "row"]),
        # -- templates, saved blocks, media, share links (reference §2.3) ------------------
        # Rendered on every save: `RENDERED_TEMPLATE` above.
        "emailTemplates": define_table(
            {
                **RENDERED_TEMPLATE,
                "type": TEMPLATE_TYPE,
                "status": TEMPLATE_STATUS,
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_updated", ["organizationId", "updatedAt"])
        .index("by_org_type_updated", ["organizationId", "type", "updatedAt"])
        .index("by_org_status_updated", ["organizationId", "status", "updatedAt"]),
        # Snapshots of a template: at most 50 per template (the oldest go), a capture
        # identical to the latest one under the same trigger is skipped (contentHash).
        "emailTemplateVersions": define_table(
            {
                "organizationId": v.id("organizations"),
                "templateId": v.id("emailTemplates"),
                "trigger": VERSION_TRIGGER,
                "content": v.string(),
                "name": v.string(),
                "subject": v.string(),
                "previewText": v.optional(v.string()),
                "contentBlockVersion": v.optional(v.number()),
                "contentBytes": v.number(),
                "contentHash": v.string(),
                "createdBy": v.optional(v.id("users")),
                "createdAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_template", ["templateId", "createdAt"]),
        # Transactional emails (reference §2.3, §3.9): templates sent one recipient at a
        # time through POST /api/v1/transactional, found by id or by `slug` (unique in the
        # organization). `dataVariablesSchema` types the variables a request may pass;
        # `attachments` go with every send (stored files of the organization).
        "transactionalEmails": define_table(
            {
                **RENDERED_TEMPLATE,
                "slug": v.string(),
                "status": TRANSACTIONAL_STATUS,
                "dataVariablesSchema": v.optional(v.record(v.string(), VARIABLE_TYPE)),
                "attachments": v.optional(v.array(ATTACHMENT)),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_slug", ["organizationId", "slug"])
        .index("by_org_updated", ["organizationId", "updatedAt"])
        .index("by_org_status_updated", ["organizationId", "status", "updatedAt"]),
        # What the API's intake reads of a transactional email, kept by a trigger on every
        # write of the email (lib/transactional_profiles.py): its checks' fields, and the
        # `sendContents` row and subject of each language sent since its rendering changed.
        "transactionalProfiles": define_table(
            {
                "organizationId": v.id("organizations"),
                "transactionalEmailId": v.id("transactionalEmails"),
                "slug": v.string(),
                "status": TRANSACTIONAL_STATUS,
                "hasContent": v.boolean(),  # rendered HTML and at least one block
                "showUnsubscribe": v.optional(v.boolean()),
                "defaultLanguage": v.optional(v.string()),
                "supportedLanguages": v.optional(v.array(v.string())),
                "dataVariablesSchema": v.optional(v.record(v.string(), VARIABLE_TYPE)),
                "attachments": v.optional(v.array(ATTACHMENT)),
                "contents": v.record(
                    v.string(),
                    v.object({"contentId": v.id("sendContents"), "subject": v.string()}),
                ),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_email", ["transactionalEmailId"])
        .index("by_org_slug", ["organizationId", "slug"]),
        # A transactional email's send counters, a few shard rows per email, summed when
        # read: {"queued": sendCount, <outcome>: n} (lib/sending/transactional_counts.py)
        "transactionalCounts": define_table(
            {
                "organizationId": v.id("organizations"),
                "transactionalEmailId": v.id("transactionalEmails"),
                "shard": v.number(),
                "counts": v.record(v.string(), v.number()),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_email", ["transactionalEmailId", "shard"]),
        # Saved blocks: blocks a template embeds by reference (savedBlockRef); changing
        # one re-renders every template that links it, in batches (lib/saved_blocks.py).
        "emailBlocks": define_table(
            {
                "organizationId": v.id("organizations"),
                "name": v.string(),
                "description": v.optional(v.string()),
                "content": v.string(),  # JSON of EditorBlock[]
                "usageCount": v.number(),  # templates linking it
                # bumped by every change, deletion and resumed propagation: a propagation
                # step carries the revision it belongs to and stops once it moved on
                "revision": v.number(),
                # the change being carried into the linking templates (absent: none)
                "propagation": v.optional(
                    v.object(
                        {
                            "kind": v.union(v.literal("sync"), v.literal("detach")),
                            "phase": v.union(v.literal("mark"), v.literal("render")),
                            # the table being walked (absent: emailTemplates)
                            "table": v.optional(
                                v.union(
                                    v.literal("emailTemplates"), v.literal("transactionalEmails")
                                )
                            ),
                            "cursor": v.union(v.string(), v.null()),
                            "updatedAt": v.number(),
                        }
                    )
                ),
                # set by remove: hidden at once, deleted when detached from every template
                "deletedAt": v.optional(v.number()),
                "createdBy": v.optional(v.id("users")),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_updated", ["organizationId", "updatedAt"])
        .index("by_propagation", ["propagation.updatedAt"]),
        # Uploaded images (checked by their bytes) for templates.
        "mediaAssets": define_table(
            {
                "organizationId": v.id("organizations"),
                "storageId": v.id("_storage"),
                "filename": v.string(),
                "mimeType": v.string(),
                "fileSize": v.number(),
                "width": v.optional(v.number()),
                "height": v.optional(v.number()),
                "url": v.string(),
                "alt": v.optional(v.string()),
                "tags": v.optional(v.array(v.string())),
                "uploadedBy": v.id("users"),
                "searchableText": v.string(),  # filename, alt and tags, lower case
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_created", ["organizationId", "createdAt"])
        .index("by_storage_id", ["storageId"]),
        # Public preview links: a snapshot of an email template's or a transactional
        # email's HTML for 48 hours (`emailTemplateId` xor `transactionalEmailId`, as
        # `targetType` says). Only the token's SHA-256 is stored (the link is shown once).
        "shareLinks": define_table(
            {
                "organizationId": v.id("organizations"),
                "targetType": v.union(v.literal("emailTemplate"), v.literal("transactionalEmail")),
                "emailTemplateId": v.optional(v.id("emailTemplates")),
                "transactionalEmailId": v.optional(v.id("transactionalEmails")),
                "tokenHash": v.string(),
                "htmlContent": v.string(),
                "rendererVersion": v.optional(v.number()),
                "subject": v.string(),
                "previewText": v.optional(v.string()),
                "expiresAt": v.number(),
                "createdBy": v.id("users"),
                "revokedAt": v.optional(v.number()),
                "createdAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_token_hash", ["tokenHash"])
        .index("by_template", ["emailTemplateId", "createdAt"])
        .index("by_transactional_email", ["transactionalEmailId", "createdAt"]),
        # Events sent through POST /api/v1/events (stored; automations read them later)
        "events": define_table(
            {
                "organizationId": v.id("organizations"),
                "eventId": v.string(),  # "evt_<base36 ms><8 base36>"
                "contactId": v.id("contacts"),
                "eventName": v.string(),
                "eventProperties": v.record(v.string(), EVENT_PROPERTY_VALUE),
                "source": v.union(v.literal("api"), v.literal("dashboard")),
                "occurredAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_event", ["organizationId", "eventName", "occurredAt"])
        .index("by_contact", ["contactId", "occurredAt"])
        .index("by_event_id", ["eventId"]),
        # -- sending ---------------------------------------------------------------------
        # Sending domains (reference §2.6, §12; lib/domains/): the records to publish for
        # the provider kind, the lifecycle of lib/domains/states.py, the key material.
        "domains": define_table(
            {
                "organizationId": v.id("organizations"),
                "domain": v.string(),  # lower-case ASCII (lib/domains/names.py)
                "providerKind": PROVIDER_KIND,
                "status": DOMAIN_STATUS,
                "dnsRecords": v.object(
                    {
                        "verification": v.optional(DNS_RECORD),
                        "spf": v.optional(DNS_RECORD),
                        "dkim": v.optional(v.array(DNS_RECORD)),
                        "dmarc": v.optional(DNS_RECORD),
                        "mailFrom": v.optional(v.array(DNS_RECORD)),
                    }
                ),
                # bumped whenever dnsRecords change: a check of older records is not applied
                "recordsVersion": v.number(),
                "dmarcPolicy": DMARC_MODE,
                "dmarcSubdomainPolicy": v.optional(DMARC_MODE),
                "dmarcPct": v.optional(v.number()),
                "dmarcRua": v.optional(v.string()),
                "returnPathHost": v.optional(v.string()),  # SES MAIL FROM domain
                # DKIM key Owlat signs with (smtp, outbox): private key sealed at rest
                "dkimSelector": v.optional(v.string()),
                "dkimPublicKey": v.optional(v.string()),
                "dkimPrivateKey": v.optional(v.string()),
                # the value of the `_owlat` TXT record proving control (resend)
                "ownershipToken": v.optional(v.string()),
                # SES identity (ses)
                "sesVerificationToken": v.optional(v.string()),
                "sesDkimTokens": v.optional(v.array(v.string())),
                "sesRegion": v.optional(v.string()),
                "lastRegistrationError": v.optional(v.string()),
                # last verification run: one entry per record (and the provider's check)
                "verificationResults": v.optional(
                    v.array(
                        v.object(
                            {
                                "key": v.string(),
                                "name": v.string(),
                                "status": v.string(),
                                "verified": v.boolean(),
                                "error": v.optional(v.string()),
                                "foundValue": v.optional(v.string()),
                                "lastChecked": v.number(),
                            }
                        )
                    )
                ),
                "lastCheckSummary": v.optional(v.string()),
                "lastCheckedAt": v.optional(v.number()),
                # lifecycle (DomainState.to_fields)
                "pendingSince": v.optional(v.number()),
                "verifiedAt": v.optional(v.number()),
                "lastVerifiedAt": v.optional(v.number()),
                "unverifiedChecks": v.number(),
                "nextCheckAt": v.optional(v.number()),
                "createdBy": v.optional(v.id("users")),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_domain", ["organizationId", "domain"])
        .index("by_next_check", ["nextCheckAt"]),
        # Tracking domains: a CNAME to the site's host, for open and click links.
        "trackingDomains": define_table(
            {
                "organizationId": v.id("organizations"),
                "domain": v.string(),
                "cnameTarget": v.string(),
                "status": v.union(v.literal("pending"), v.literal("verified"), v.literal("failed")),
                "verifiedAt": v.optional(v.number()),
                "lastCheckedAt": v.optional(v.number()),
                "lastError": v.optional(v.string()),
                "nextCheckAt": v.optional(v.number()),
                "createdBy": v.optional(v.id("users")),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_domain", ["organizationId", "domain"])
        .index("by_next_check", ["nextCheckAt"]),
        # Configured email providers (lib/email_providers/configured.py): settings in the
        # clear, secrets sealed (AES-GCM, bound to the organization and kind).
        "emailProviders": define_table(
            {
                "organizationId": v.id("organizations"),
                "kind": v.union(v.literal("smtp"), v.literal("ses"), v.literal("resend")),
                "settings": v.record(v.string(), v.union(v.string(), v.number())),
                "credentials": v.string(),  # sealed
                "secretNames": v.array(v.string()),
                "updatedBy": v.optional(v.id("users")),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_kind", ["organizationId", "kind"]),
        # Routes per message type (lib/sending/routes.py); none: the default route.
        "providerRoutes": define_table(
            {
                "organizationId": v.id("organizations"),
                "messageType": MESSAGE_TYPE,
                "strategy": ROUTE_STRATEGY,
                "providers": v.array(
                    v.object(
                        {"provider": PROVIDER_KIND, "weight": v.number(), "enabled": v.boolean()}
                    )
                ),
                "updatedBy": v.optional(v.id("users")),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_type", ["organizationId", "messageType"]),
        # Provider health per organization (routing.Health, stored): consecutive faults,
        # the window of recent calls ("1" success, "0" fault), the end of a cool-down,
        # totals and the last error.
        "providerHealth": define_table(
            {
                "organizationId": v.id("organizations"),
                "provider": PROVIDER_KIND,
                "consecutiveFaults": v.number(),
                "recent": v.optional(v.string()),
                "downUntil": v.optional(v.number()),
                "sent": v.number(),
                "failed": v.number(),
                "lastSuccessAt": v.optional(v.number()),
                "lastFailureAt": v.optional(v.number()),
                "lastErrorKind": v.optional(v.string()),
                "lastError": v.optional(v.string()),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_provider", ["organizationId", "provider"]),
        # Every non-campaign send (reference §2.3), moved through lib/sending/send_states.py
        # by lib/sending/sends.py: recorded `queued`, claimed `sending` before the provider
        # call (with the key the provider dedupes by), then `sent` or `failed`.
        "transactionalSends": define_table(
            {
                # absent: a system mail, the instance's own (sign-up, password reset,
                # invitation: lib/mailer.py), seen by no organization
                "organizationId": v.optional(v.id("organizations")),
                "kind": v.union(*MESSAGE_TYPE.members, v.literal("system")),
                "transactionalEmailId": v.optional(v.string()),
                "automationId": v.optional(v.string()),
                "contactId": v.optional(v.id("contacts")),
                "email": v.string(),  # the recipient, normalized
                "fromAddress": v.string(),  # as the From header shows it
                "replyTo": v.optional(v.string()),
                "subject": v.string(),
                # the bodies: `sendBodies` (written once; the row is patched at each step)
                "bodyId": v.optional(v.id("sendBodies")),
                # or: the rendering it was accepted with (`sendContents`, shared by the
                # sends of one email, language and rendering), personalized at delivery
                # with `dataVariables` and, when set, the unsubscribe footer's links
                # (lib/sending/send_contents.py)
                "contentId": v.optional(v.id("sendContents")),
                "footerLinks": v.optional(
                    v.object({"preferences": v.string(), "unsubscribe": v.string()})
                ),
                # sends enqueued before `sendBodies` carry their bodies here
                "html": v.optional(v.string()),
                "text": v.optional(v.string()),
                "headers": v.record(v.string(), v.string()),  # the kind's (§8.3)
                "language": v.optional(v.string()),
                "dataVariables": v.optional(v.record(v.string(), DATA_VARIABLE)),
                # in order: the template's, then the request's
                "attachments": v.optional(v.array(ATTACHMENT)),
                # the request's stored files: deleted once the send is sent or failed
                "attachmentStorageIds": v.optional(v.array(v.id("_storage"))),
                "idempotencyKey": v.optional(v.string()),  # the caller's, unique per org
                "deliveryKey": v.string(),  # what providers dedupe by (random, fixed)
                "messageId": v.string(),  # Message-ID without <>, fixed at enqueue
                "status": SEND_STATUS,
                "attempts": v.number(),  # claims so far
                "claimedAt": v.optional(v.number()),
                # the attempt journal of the process that claimed it (lib/sending/journal.py)
                "claimedBy": v.optional(v.string()),
                # the enabled providers of the route of the last claim
                "routeProviders": v.optional(v.array(PROVIDER_KIND)),
                "queuedAt": v.number(),
                "sentAt": v.optional(v.number()),
                "failedAt": v.optional(v.number()),
                "deliveredAt": v.optional(v.number()),
                "openedAt": v.optional(v.number()),
                "clickedAt": v.optional(v.number()),
                "bouncedAt": v.optional(v.number()),
                "complainedAt": v.optional(v.number()),
                "bounceType": v.optional(BOUNCE_TYPE),
                "openCount": v.optional(v.number()),
                # opens by a mailbox provider's image proxy (lib/tracking/prefetch.py), and
                # the first open that was not one
                "proxyOpenCount": v.optional(v.number()),
                "humanOpenedAt": v.optional(v.number()),
                "clickCount": v.optional(v.number()),
                "clickedLinks": v.optional(
                    v.array(v.object({"url": v.string(), "clickedAt": v.number()}))
                ),
                "errorCode": v.optional(v.string()),
                "errorMessage": v.optional(v.string()),
                "providerType": v.optional(PROVIDER_KIND),
                "providerMessageId": v.optional(v.string()),
                "createdBy": v.optional(v.id("users")),
                "updatedAt": v.number(),
            }
        )
        # Only indexes a query reads: each one's key is computed at every write of a send
        # (queued by the intake, then sending, sent) and its entry written when it changes.
        .index("by_org", ["organizationId"])
        .index("by_org_queued", ["organizationId", "queuedAt"])
        .index("by_org_key", ["organizationId", "idempotencyKey"])
        .index("by_org_transactional_email", ["organizationId", "transactionalEmailId"])
        .index("by_provider_message_id", ["providerMessageId"])
        .index("by_status_updated", ["status", "updatedAt"])
        .index("by_org_status", ["organizationId", "status", "queuedAt"]),
        # An organization's delivery job (lib/sending/sends.py): while the row exists, the
        # job it names will look for the organization's queued sends, so an enqueued send
        # schedules no job of its own.
        "sendQueues": define_table(
            {
                "organizationId": v.id("organizations"),
                "jobId": v.id("_scheduled_functions"),
                "armedAt": v.number(),
            }
        ).index("by_org", ["organizationId"]),
        # A send's bodies and variables, apart from its `transactionalSends` row.
        "sendBodies": define_table(
            {
                "organizationId": v.optional(v.id("organizations")),  # absent: a system mail
                "html": v.optional(v.string()),
                "text": v.string(),
                "dataVariables": v.optional(v.record(v.string(), DATA_VARIABLE)),
            }
        ).index("by_org", ["organizationId"]),
        # A transactional email's rendering in one language, as sends of it were accepted:
        # never changed (a new rendering is a new row), deleted with the organization only
        # (lib/sending/send_contents.py).
        "sendContents": define_table(
            {
                "organizationId": v.id("organizations"),
                "transactionalEmailId": v.id("transactionalEmails"),
                "language": v.string(),
                "subject": v.string(),
                "html": v.string(),
                "text": v.string(),
                "variables": v.array(v.string()),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_email_language", ["transactionalEmailId", "language"]),
        # -- campaigns (lib/campaigns/) ------------------------------------------------------
        "campaigns": define_table(
            {
                "organizationId": v.id("organizations"),
                "name": v.string(),
                "status": CAMPAIGN_STATUS,
                "emailTemplateId": v.optional(v.id("emailTemplates")),
                "subject": v.optional(v.string()),  # overrides the template's subject
                "fromName": v.optional(v.string()),
                "fromEmail": v.optional(v.string()),
                "replyTo": v.optional(v.string()),
                "audience": v.optional(CAMPAIGN_AUDIENCE),
                "scheduledAt": v.optional(v.number()),
                "sentAt": v.optional(v.number()),  # when sending started
                "pausedAt": v.optional(v.number()),
                "cancelledAt": v.optional(v.number()),
                "completedAt": v.optional(v.number()),
                # bumped whenever delivery workers are started: older workers stop
                "workerGeneration": v.optional(v.number()),
                # A/B test (lib/campaigns/ab_tests.py)
                "isABTest": v.optional(v.boolean()),
                "abTestConfig": v.optional(AB_TEST_CONFIG),
                "abTestStatus": v.optional(
                    v.union(
                        v.literal("pending"), v.literal("testing"), v.literal("winner_selected")
                    )
                ),
                "abWinner": v.optional(AB_VARIANT),
                "abWinnerSelectedAt": v.optional(v.number()),
                # recipient-local send time (lib/campaigns/local_time.py): each recipient
                # at scheduledHour:scheduledMinute in their zone (else `timezone`, else the
                # organization's, else UTC)
                "useRecipientTimezone": v.optional(v.boolean()),
                "scheduledHour": v.optional(v.number()),
                "scheduledMinute": v.optional(v.number()),
                "timezone": v.optional(v.string()),
                # public "view in browser" page (lib/campaigns/content.py), token set at start
                "archiveEnabled": v.optional(v.boolean()),
                "archiveToken": v.optional(v.string()),
                # why the content scan sent it back to draft (cleared when sending starts)
                "contentBlockReason": v.optional(v.string()),
                "createdBy": v.optional(v.id("users")),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_updated", ["organizationId", "updatedAt"])
        .index("by_status_scheduled", ["status", "scheduledAt"])
        .index("by_archive_token", ["archiveToken"]),
        # The walk of a sending campaign's frozen audience: one row per campaign, its
        # keyset cursor advanced in the mutation that creates the page's emailSends rows.
        "campaignSendJobs": define_table(
            {
                "organizationId": v.id("organizations"),
                "campaignId": v.id("campaigns"),
                "phase": v.union(v.literal("walking"), v.literal("done")),
                "audience": CAMPAIGN_AUDIENCE,  # frozen at start (segment filters copied)
                "cursor": v.union(v.string(), v.null()),  # null: from the start
                "hop": v.number(),  # pages walked; a walk step for another hop is stale
                "candidates": v.number(),  # audience entries read
                "enqueued": v.number(),  # emailSends rows created
                "skipped": v.number(),  # candidates not eligible when walked
                # A/B: `ab_test` walks the test cohort, `ab_winner` the rest (absent: plain)
                "variantMode": v.optional(
                    v.union(v.literal("plain"), v.literal("ab_test"), v.literal("ab_winner"))
                ),
                "testFraction": v.optional(v.number()),
                "heldBack": v.optional(v.number()),  # eligible, outside the test cohort
                # due times of recipient-local sends that have a worker wake-up scheduled
                "wakeTimes": v.optional(v.array(v.number())),
                "startedAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_campaign", ["campaignId"])
        .index("by_phase_updated", ["phase", "updatedAt"]),
        # Counts of a campaign's sends by outcome, kept by the delivery's batch mutations
        # (never by scanning emailSends): what campaigns:progress reads.
        "campaignStats": define_table(
            {
                "organizationId": v.id("organizations"),
                "campaignId": v.id("campaigns"),
                "sent": v.number(),
                "failed": v.number(),
                "suppressed": v.number(),  # refused when claimed (unsubscribed, blocked)
                # after `sent` (lib/sending/feedback.py through send_tables.py): sends with
                # delivery evidence, opened (any open / a non-proxy open), clicked, bounced
                # (of which hard / soft), complained; absent: 0
                "delivered": v.optional(v.number()),
                "opened": v.optional(v.number()),
                "humanOpened": v.optional(v.number()),
                "clicked": v.optional(v.number()),
                "bounced": v.optional(v.number()),
                "hardBounced": v.optional(v.number()),
                "softBounced": v.optional(v.number()),
                "complained": v.optional(v.number()),
                # A/B: the same counters per variant ({"A": {"sent": 3, ...}, "B": ...})
                "variants": v.optional(v.record(v.string(), v.record(v.string(), v.number()))),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_campaign", ["campaignId"]),
        # The curated campaign From list (lib/campaigns/senders.py): once an organization
        # has one, its campaigns send From an enabled sender only.
        "campaignSenders": define_table(
            {
                "organizationId": v.id("organizations"),
                "email": v.string(),  # lower case
                "displayName": v.optional(v.string()),
                "isEnabled": v.boolean(),
                "isDefault": v.boolean(),  # at most one per organization
                "createdBy": v.optional(v.id("users")),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        ).index("by_org", ["organizationId"]),
        # What a campaign sends, copied when sending starts (lib/campaigns/content.py):
        # one row per variant ("A"; "B" for an A/B test), the template's rendered fields.
        "campaignContents": define_table(
            {
                "organizationId": v.id("organizations"),
                "campaignId": v.id("campaigns"),
                "variant": AB_VARIANT,
                "templateId": v.id("emailTemplates"),
                "template": v.record(v.string(), v.any()),
                "createdAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_campaign", ["campaignId", "variant"]),
        # Content scans (lib/content_scans.py, lib/content_scan.py): the non-clean results
        # of a transactional email's publish or a campaign's start, the latest of a
        # resource first by `by_resource`; `review` records the admin's decision,
        # `complaints` the complaints about the campaign's sends (reference §10.1).
        "contentScanResults": define_table(
            {
                "organizationId": v.id("organizations"),
                "resourceType": v.union(
                    v.literal("campaign"),
                    v.literal("transactional"),
                    v.literal("attachment"),
                    v.literal("media_upload"),
                ),
                "resourceId": v.string(),
                "score": v.number(),  # 0-100
                "level": v.union(v.literal("clean"), v.literal("suspicious"), v.literal("blocked")),
                "flags": v.array(
                    v.object(
                        {
                            "code": v.string(),
                            "severity": v.union(
                                v.literal("high"), v.literal("medium"), v.literal("low")
                            ),
                            "message": v.string(),
                            "where": v.union(
                                v.literal("subject"), v.literal("html"), v.literal("text")
                            ),
                        }
                    )
                ),
                "scannedAt": v.number(),
                # of the scanned parts: an approval holds for exactly this content
                "contentHash": v.string(),
                "review": v.optional(
                    v.object(
                        {
                            "decision": v.union(v.literal("approved"), v.literal("rejected")),
                            "by": v.id("users"),
                            "at": v.number(),
                        }
                    )
                ),
                "complaints": v.optional(v.number()),
                "lastComplaintAt": v.optional(v.number()),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_resource", ["organizationId", "resourceType", "resourceId", "scannedAt"]),
        # One row per (campaign, contact): created `queued` by the walk, claimed in
        # batches (`sending`), then `sent` or `failed` (send_states.py).
        "emailSends": define_table(
            {
                "organizationId": v.id("organizations"),
                "campaignId": v.id("campaigns"),
                "contactId": v.id("contacts"),
                "email": v.string(),  # the contact's address when walked
                "status": SEND_STATUS,
                "abVariant": v.optional(AB_VARIANT),
                # recipient-local time: not claimed before (a queued send's updatedAt is
                # kept at it, so the claim's index range skips it until then)
                "dueAt": v.optional(v.number()),
                "attempts": v.number(),  # claims so far
                "messageId": v.optional(v.string()),  # fixed at the first claim
                "claimedAt": v.optional(v.number()),
                # the attempt journal of the process that claimed it (lib/sending/journal.py)
                "claimedBy": v.optional(v.string()),
                # provider deferrals (4xx, rate limits) so far (lib/campaigns/throttle.py)
                "deferrals": v.optional(v.number()),
                "routeProviders": v.optional(v.array(PROVIDER_KIND)),
                "queuedAt": v.number(),
                "sentAt": v.optional(v.number()),
                "failedAt": v.optional(v.number()),
                "errorCode": v.optional(v.string()),
                "errorMessage": v.optional(v.string()),
                "providerType": v.optional(PROVIDER_KIND),
                "providerMessageId": v.optional(v.string()),
                # the §10.1 lifecycle after `sent` (lib/sending/feedback.py), as on
                # transactionalSends
                "deliveredAt": v.optional(v.number()),
                "openedAt": v.optional(v.number()),
                "clickedAt": v.optional(v.number()),
                "bouncedAt": v.optional(v.number()),
                "complainedAt": v.optional(v.number()),
                "bounceType": v.optional(BOUNCE_TYPE),
                "openCount": v.optional(v.number()),
                "proxyOpenCount": v.optional(v.number()),
                "humanOpenedAt": v.optional(v.number()),
                "clickCount": v.optional(v.number()),
                "clickedLinks": v.optional(
                    v.array(v.object({"url": v.string(), "clickedAt": v.number()}))
                ),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_campaign_contact", ["campaignId", "contactId"])
        .index("by_campaign_status", ["campaignId", "status", "updatedAt"])
        .index("by_contact", ["contactId"])
        .index("by_provider_message_id", ["providerMessageId"]),
        # Outgoing webhooks (app/webhooks.py, lib/webhooks/): endpoints of the organization
        # and one log row per event delivered to one of them (its attempts, 30 days).
        "webhooks": define_table(
            {
                "organizationId": v.id("organizations"),
                "name": v.string(),
                "url": v.string(),
                "events": v.array(v.string()),
                "secret": v.string(),  # whsec_ + 32 alphanumerics, sealed
                "isActive": v.boolean(),
                # deliveries that failed after every attempt, in a row (reset by a success)
                "consecutiveFailures": v.number(),
                "disabledReason": v.optional(v.string()),  # set when Owlat turned it off
                "createdBy": v.optional(v.id("users")),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        ).index("by_org", ["organizationId"]),
        "webhookDeliveryLogs": define_table(
            {
                "organizationId": v.id("organizations"),
                "webhookId": v.id("webhooks"),
                "event": v.string(),
                "payload": v.string(),  # the exact body: {"event","timestamp","data"}
                "payloadVersion": v.number(),
                "attemptNumber": v.number(),
                "maxAttempts": v.number(),
                "status": v.union(
                    v.literal("pending"),
                    v.literal("retrying"),
                    v.literal("success"),
                    v.literal("failed"),
                ),
                "httpStatusCode": v.optional(v.number()),
                "responseBody": v.optional(v.string()),
                "errorMessage": v.optional(v.string()),
                "scheduledAt": v.number(),
                "dueAt": v.number(),  # when the next attempt is due (pending, retrying)
                "attemptedAt": v.optional(v.number()),
                "nextRetryAt": v.optional(v.number()),
                "completedAt": v.optional(v.number()),
                "durationMs": v.optional(v.number()),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_webhook", ["webhookId", "scheduledAt"])
        .index("by_status_due", ["status", "dueAt"])
        .index("by_status_completed", ["status", "completedAt"]),
        # Raw bodies of inbound provider webhooks (app/provider_webhooks.py), kept 90
        # days; instance-wide: a body may concern several organizations' sends.
        "webhookPayloads": define_table(
            {"source": v.string(), "rawPayload": v.string(), "receivedAt": v.number()}
        ).index("by_received", ["receivedAt"]),
        # Idempotency-Key of POST /api/v1/transactional: the answer given to the first
        # request with the key, replayed for 24 hours to a request with the same body
        # (`requestHash`); another body with the key is refused.
        "apiIdempotencyKeys": define_table(
            {
                "organizationId": v.id("organizations"),
                "key": v.string(),
                "requestHash": v.string(),
                "response": v.any(),  # the answer's `data`
                "sendId": v.id("transactionalSends"),
                "expiresAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_key", ["organizationId", "key"])
        .index("by_expires", ["expiresAt"]),
        # Automations (app/automations.py, lib/automations.py): the steps live in the
        # automation; one run per (automation, contact) walking them; counters per run
        # outcome (key "run") and per step (key = the step's id).
        "automations": define_table(
            {
                "organizationId": v.id("organizations"),
                "name": v.string(),
                "description": v.optional(v.string()),
                "triggerType": AUTOMATION_TRIGGER,
                # {propertyKey} | {eventName} | {listId}, per trigger type
                "triggerConfig": v.record(v.string(), v.string()),
                "status": v.union(v.literal("draft"), v.literal("active"), v.literal("paused")),
                "steps": v.array(
                    v.object({"id": v.string(), "type": v.string(), "config": v.any()})
                ),
                "stepsVersion": v.number(),  # bumped by each change of the steps
                "consecutiveRunFailures": v.number(),
                "pausedReason": v.optional(v.string()),  # set when Owlat paused it
                "activatedAt": v.optional(v.number()),
                "pausedAt": v.optional(v.number()),
                "createdBy": v.optional(v.id("users")),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_trigger_status", ["organizationId", "triggerType", "status"]),
        "automationRuns": define_table(
            {
                "organizationId": v.id("organizations"),
                "automationId": v.id("automations"),
                "contactId": v.id("contacts"),
                "status": v.union(
                    v.literal("running"),
                    v.literal("completed"),
                    v.literal("cancelled"),
                    v.literal("failed"),
                ),
                "stepIndex": v.number(),
                "stepsVersion": v.number(),  # the automation's, when the run started
                # compare-and-set token: a step job carries the seq it was scheduled
                # for and does nothing unless the run still has it
                "seq": v.number(),
                "retries": v.number(),  # of the current step
                "stepsExecuted": v.number(),
                "nextStepAt": v.optional(v.number()),  # while running
                "triggeredBy": AUTOMATION_TRIGGER,
                "triggerData": v.record(v.string(), v.string()),
                "error": v.optional(v.string()),
                "startedAt": v.number(),
                "completedAt": v.optional(v.number()),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_automation", ["automationId", "startedAt"])
        .index("by_automation_contact_status", ["automationId", "contactId", "status"])
        .index("by_contact", ["contactId"])
        .index("by_status_next", ["status", "nextStepAt"]),
        "automationStats": define_table(
            {
                "organizationId": v.id("organizations"),
                "automationId": v.id("automations"),
                "key": v.string(),  # "run" or a step id
                "counts": v.record(v.string(), v.number()),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_automation_key", ["automationId", "key"]),
        # Forms (app/form_endpoints.py, app/form_routes.py): public sign-up endpoints
        # (POST /forms/<id>) and every submission (IP and user agent scrubbed at 90 days).
        "formEndpoints": define_table(
            {
                "organizationId": v.id("organizations"),
                "name": v.string(),
                "listId": v.optional(v.id("mailingLists")),
                "fields": v.array(
                    v.object(
                        {
                            "key": v.string(),
                            "label": v.string(),
                            "type": v.union(
                                v.literal("email"), v.literal("text"), v.literal("checkbox")
                            ),
                            "required": v.boolean(),
                        }
                    )
                ),
                "redirectUrl": v.optional(v.string()),
                "honeypotFieldName": v.string(),
                "isActive": v.boolean(),
                "doubleOptIn": v.boolean(),
                "submissionCount": v.number(),
                "successfulSubmissionCount": v.number(),
                "createdBy": v.optional(v.id("users")),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        ).index("by_org", ["organizationId"]),
        "formSubmissions": define_table(
            {
                "organizationId": v.id("organizations"),
                "formEndpointId": v.id("formEndpoints"),
                "contactId": v.optional(v.id("contacts")),
                "data": v.record(v.string(), v.string()),
                "status": v.union(
                    v.literal("success"),
                    v.literal("pending_confirmation"),
                    v.literal("duplicate"),
                    v.literal("spam"),
                    v.literal("invalid"),
                ),
                "ipAddress": v.optional(v.string()),
                "userAgent": v.optional(v.string()),
                "errorMessage": v.optional(v.string()),
                "submittedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_form", ["formEndpointId", "submittedAt"])
        .index("by_submitted", ["submittedAt"]),
    }
)
