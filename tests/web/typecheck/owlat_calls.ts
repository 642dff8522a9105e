// Calls on the committed types of owlat.app (./owlat: web/src/convex/_generated).
import type { ConvexClient } from "convex/browser";
import { api } from "./owlat/api";
import type { Doc, Id } from "./owlat/dataModel";

declare const client: ConvexClient;
declare const organizationId: Id<"organizations">;

void client.query(api.contacts.listFromSession, { paginationOpts: { numItems: 25, cursor: null } });
void client.query(api.contacts.listFromSession, {
  paginationOpts: { numItems: 25, cursor: "c" },
  search: "ada",
});
void client.mutation(api.contacts.createFromSession, { email: "a@b.io", firstName: null });
void client.mutation(api.invitations.invite, { email: "a@b.io", role: "editor" });
void client.mutation(api.organizations.setActive, { organizationId });

async function viewer(): Promise<void> {
  const seen = await client.query(api.dashboard.viewer, {});
  if (seen?.organization) {
    const role: "owner" | "admin" | "editor" = seen.organization.role;
    const permissions: string[] = seen.organization.permissions;
    const id: Id<"organizations"> = seen.organization._id;
    void [role, permissions, id];
  }
}
declare const contact: Doc<"contacts">;
const email: string = contact.email;
void [viewer, email];

// @ts-expect-error paginationOpts is required
void client.query(api.contacts.listFromSession, { search: "ada" });
// @ts-expect-error roles are owner, admin and editor
void client.mutation(api.invitations.invite, { email: "a@b.io", role: "member" });
// @ts-expect-error the source is one of the schema's literals
void client.mutation(api.contacts.createFromSession, { email: "a@b.io", source: "dashboard" });
