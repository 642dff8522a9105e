// The npm ConvexHttpClient against an Owlat server: node http_client.mjs URL TOKEN ADMIN_KEY
// Prints one JSON line with what each call returned or threw (bigints as "<n>n").
import { ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { ConvexError } from "convex/values";

const [url, token, adminKey] = process.argv.slice(2);
const logged = [];
const logger = {
  log: (...parts) => logged.push(parts.join(" ")),
  warn: (...parts) => logged.push(parts.join(" ")),
  error: (...parts) => logged.push(parts.join(" ")),
  logVerbose: () => {},
};
const client = new ConvexHttpClient(url, { logger });
client.setDebug(true);

async function outcome(call) {
  try {
    return { value: await call() };
  } catch (error) {
    return {
      error: error.message,
      isConvexError: error instanceof ConvexError,
      data: error.data,
    };
  }
}

const out = {};
out.sent = await outcome(() => client.mutation(anyApi.messages.send, { channel: "js", body: "hi" }));
out.listed = await outcome(() => client.query(anyApi.messages.list, { channel: "js" }));
out.action = await outcome(() => client.action(anyApi.counters.incrementMany, { name: "js", times: 2 }));
out.consistent = await outcome(() => client.consistentQuery(anyApi.messages.list, { channel: "js" }));
out.values = await outcome(() => client.query(anyApi.probes.values, {}));
out.shout = await outcome(() => client.query(anyApi.probes.shout, { text: "js" }));
out.convexError = await outcome(() => client.mutation(anyApi.messages.send, { channel: "js", body: "" }));
out.missing = await outcome(() => client.query(anyApi.messages.lis, {}));
out.internal = await outcome(() => client.query(anyApi.probes.secret, {}));
out.anonymous = await outcome(() => client.query(anyApi.probes.whoami, {}));
client.setAuth(token);
out.identity = await outcome(() => client.query(anyApi.probes.whoami, {}));
client.setAuth("not-a-jwt");
out.badToken = await outcome(() => client.query(anyApi.probes.whoami, {}));
client.setAdminAuth(adminKey);
out.adminFunction = await outcome(() => client.function(anyApi.probes.secret, undefined, {}));
client.setAdminAuth(adminKey, { subject: "acting-1", issuer: "https://admin.test", name: "Ada" });
out.acting = await outcome(() => client.query(anyApi.probes.whoami, {}));
out.logged = logged;

console.log(JSON.stringify(out, (_, value) => (typeof value === "bigint" ? `${value}n` : value)));
