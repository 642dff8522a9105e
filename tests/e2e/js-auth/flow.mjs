// BetterAuth's own client (better-auth 1.7.25: createAuthClient + organizationClient +
// jwtClient) against Owlat's /api/auth. Usage:
//   node flow.mjs SITE_URL OUTBOX_DIR ADMIN_EMAIL ADMIN_PASSWORD
// The admin (created by `owlat admin create`) signs in, creates an organization and invites
// a second user, who signs up (email not verified), finds the invitation link in the outbox,
// accepts it with the link's token (which verifies the address) and takes a JWT. Prints one
// JSON object with what each step answered.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createAuthClient } from "better-auth/client";
import { jwtClient, organizationClient } from "better-auth/client/plugins";

const [site, outboxDir, adminEmail, adminPassword] = process.argv.slice(2);

function browser() {
  // node's fetch has no cookie jar: keep the cookies, send them and the Origin.
  const jar = new Map();
  const customFetchImpl = async (input, init = {}) => {
    const headers = new Headers(init.headers || {});
    headers.set("origin", site);
    if (jar.size) headers.set("cookie", [...jar].map(([k, v]) => `${k}=${v}`).join("; "));
    const response = await fetch(input, { ...init, headers });
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(";");
      const [name, value] = [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)];
      if (attributes.some((a) => a.trim().toLowerCase() === "max-age=0")) jar.delete(name);
      else jar.set(name, value);
    }
    return response;
  };
  return createAuthClient({
    baseURL: site,
    plugins: [organizationClient(), jwtClient()],
    fetchOptions: { customFetchImpl },
  });
}

const out = {};
const admin = browser();
const user = browser();
const userEmail = "second@example.com";

out.wrongPassword = await admin.signIn.email({ email: adminEmail, password: "not-the-password" });
out.unknownEmail = await admin.signIn.email({ email: "nobody@example.com", password: "whatever-123" });
out.noSession = await admin.getSession();
out.noToken = await admin.token();
out.adminSignIn = await admin.signIn.email({ email: adminEmail, password: adminPassword });
let headerJwt = null;
out.adminSession = await admin.getSession({
  fetchOptions: { onSuccess: (ctx) => { headerJwt = ctx.response.headers.get("set-auth-jwt"); } },
});
out.headerJwt = headerJwt;
out.created = await admin.organization.create({ name: "Acme Mail", slug: "acme-mail" });
out.duplicate = await admin.organization.create({ name: "Again", slug: "acme-mail" });
out.tooShort = await user.signUp.email({ email: userEmail, password: "short", name: "Second" });
out.signUp = await user.signUp.email({ email: userEmail, password: "second-password", name: "Second" });
// The taken address again, from another browser: answered as a new one, signed in to nothing.
const eve = browser();
out.takenSignUp = await eve.signUp.email({ email: userEmail, password: "eves-password", name: "Eve" });
out.takenSession = await eve.getSession();
out.tooCommon = await eve.signUp.email({ email: "third@example.com", password: "1234567890", name: "Third" });
out.invited = await admin.organization.inviteMember({ email: userEmail, role: "editor" });

// The invitation mail is sent by a scheduled job: wait for it in the outbox (up to 45 s: a
// loaded machine runs the job late).
let link = null;
let linkToken = null;
for (let i = 0; i < 900 && !link; i++) {
  let files = [];
  try { files = readdirSync(outboxDir).filter((f) => f.endsWith(".eml")); } catch {}
  for (const file of files) {
    // Lines over 78 characters (a link with its token) may come quoted-printable: look in
    // the mail as written and with that undone (undoing it on a part that is not encoded
    // would turn a token starting "=6C" into "l").
    const raw = readFileSync(join(outboxDir, file), "utf8");
    const decoded = raw
      .replace(/=\r?\n/g, "")
      .replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
    const pattern = /\/invite\/accept\?id=([A-Za-z0-9_-]+)&token=([A-Za-z0-9_-]+)/;
    const match = raw.match(pattern) || decoded.match(pattern);
    if (raw.includes(`To: ${userEmail}`) && match) [link, linkToken] = [match[1], match[2]];
  }
  if (!link) await new Promise((resolve) => setTimeout(resolve, 50));
}
out.invitationId = link;
if (!link) {
  // What the outbox held instead, for the test's failure message.
  let files = [];
  try { files = readdirSync(outboxDir); } catch (error) { files = [`unreadable: ${error}`]; }
  out.outboxSeen = files.map((file) => {
    try { return `${file}: ${readFileSync(join(outboxDir, file), "utf8").slice(0, 600)}`; }
    catch { return file; }
  });
}
// Without a verified email or the link's token, the invitation stays out of reach.
out.unverifiedList = await user.organization.listUserInvitations();
out.unverifiedAccept = await user.organization.acceptInvitation({ invitationId: link });
// A verification mail may only lead back to this site or a trusted origin.
out.phishingCallback = await user.sendVerificationEmail({
  email: userEmail,
  callbackURL: "//evil.example/phish",
});
out.invitation = await user.organization.getInvitation({ query: { id: link, token: linkToken } });
out.accepted = await user.organization.acceptInvitation({ invitationId: link, token: linkToken });
out.userOrganizations = await user.organization.list();
out.full = await user.organization.getFullOrganization();
out.userSession = await user.getSession();
out.token = await user.token();
out.jwks = await user.jwks();
out.adminSignOut = await admin.signOut();
out.afterSignOut = await admin.getSession();
console.log(JSON.stringify(out));
