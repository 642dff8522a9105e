"""A contacts-like table with seven indexes, for the bulk-mutation benchmark."""

from __future__ import annotations

from owlat.runtime import define_schema, define_table, v

schema = define_schema(
    {
        "orgs": define_table({"name": v.string()}),
        "contacts": define_table(
            {
                "organizationId": v.id("orgs"),
                "email": v.string(),
                "firstName": v.optional(v.string()),
                "lastName": v.optional(v.string()),
                "nameKey": v.optional(v.string()),
                "lastNameKey": v.optional(v.string()),
                "source": v.union(v.literal("api"), v.literal("import"), v.literal("form")),
                "properties": v.record(v.string(), v.union(v.string(), v.number(), v.boolean())),
                "subscribed": v.boolean(),
                "deletedAt": v.optional(v.number()),
                "createdAt": v.number(),
                "updatedAt": v.number(),
            }
        )
        .index("by_org", ["organizationId"])
        .index("by_org_email", ["organizationId", "email"])
        .index("by_org_created", ["organizationId", "createdAt"])
        .index("by_org_name_key", ["organizationId", "nameKey"])
        .index("by_org_last_name_key", ["organizationId", "lastNameKey"])
        .index("by_deleted_at", ["deletedAt"]),
    }
)
