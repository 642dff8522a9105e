// The npm ConvexClient (WebSocket) against an Owlat sync server:
//   node sync_client.mjs URL SCENARIO TOKEN
// SCENARIO "basic": pushes, mutations, actions, errors, auth, another client's writes.
// SCENARIO "reconnect": a mutation whose socket the server drops before answering; the
// client reconnects and re-sends it. Prints one JSON line with what it observed.
import { ConvexClient } from "convex/browser";
import { anyApi } from "convex/server";
import { ConvexError } from "convex/values";

const [url, scenario, token] = process.argv.slice(2);
const logged = [];
const logger = {
  log: (...parts) => logged.push(parts.join(" ")),
  warn: (...parts) => logged.push(parts.join(" ")),
  error: (...parts) => logged.push(parts.join(" ")),
  logVerbose: () => {},
};

function newClient() {
  return new ConvexClient(url, { logger });
}

async function until(predicate, what, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function outcome(call) {
  try {
    return { value: await call() };
  } catch (error) {
    return { error: error.message, isConvexError: error instanceof ConvexError, data: error.data };
  }
}

const bodies = (messages) => messages.map((message) => message.body);

async function basic() {
  const client = newClient();
  const other = newClient();
  const updates = [];
  client.onUpdate(anyApi.messages.list, { channel: "js" }, (messages) => updates.push(bodies(messages)));
  const identities = [];
  client.onUpdate(anyApi.syncTest.whoami, {}, (subject) => identities.push(subject));
  await until(() => updates.length === 1 && identities.length === 1, "the first results");

  const out = { first: updates[0] };
  out.sent = await outcome(() => client.mutation(anyApi.messages.send, { channel: "js", body: "mine" }));
  out.afterOwnMutation = updates.at(-1); // read-your-writes: already pushed when it resolves
  await other.mutation(anyApi.messages.send, { channel: "js", body: "theirs" });
  await until(() => updates.at(-1)?.length === 2, "the other client's write");
  out.afterOtherMutation = updates.at(-1);
  out.action = await outcome(() => client.action(anyApi.counters.incrementMany, { name: "js", times: 3 }));
  out.convexError = await outcome(() => client.mutation(anyApi.messages.send, { channel: "js", body: "" }));
  out.missing = await outcome(() => client.mutation(anyApi.messages.nope, {}));
  out.oneShot = await outcome(async () => bodies(await client.query(anyApi.messages.list, { channel: "js" })));

  client.setAuth(async () => token);
  await until(() => identities.at(-1) === "js-user", "the signed-in identity");
  out.identities = [...identities];
  out.updates = updates;
  await client.close();
  await other.close();
  return out;
}

async function reconnect() {
  const client = newClient();
  const updates = [];
  client.onUpdate(anyApi.messages.list, { channel: "drop" }, (messages) => updates.push(bodies(messages)));
  await until(() => updates.length === 1, "the first result");
  // The server drops the socket as soon as this mutation commits, before answering it.
  const sent = await outcome(() => client.mutation(anyApi.messages.send, { channel: "drop", body: "once" }));
  await until(() => updates.at(-1)?.length === 1, "the update after reconnecting");
  const after = await outcome(() => client.mutation(anyApi.messages.send, { channel: "drop", body: "twice" }));
  await until(() => updates.at(-1)?.length === 2, "the second update");
  await client.close();
  return { sent, after, updates, connectionState: null };
}

const scenarios = { basic, reconnect };
const out = await scenarios[scenario]();
out.logged = logged;
console.log(JSON.stringify(out));
process.exit(0);
