// The data browser (runtime/server/data_browser.py): every call sends the admin key,
// kept in this tab's sessionStorage, as `Authorization: Convex <key>`.
const KEY = "owlat-admin-key";
const $ = (id) => document.getElementById(id);
let nextCursor = null;
let knownTables = [];

async function api(path, options = {}) {
  const headers = { authorization: `Convex ${sessionStorage.getItem(KEY) ?? ""}` };
  if (options.body) headers["content-type"] = "application/json";
  const response = await fetch(`/_admin/api/${path}`, { ...options, headers });
  const body = await response.json();
  if (response.status === 401) signOut("The admin key was refused");
  if (!response.ok) throw new Error(body.message ?? response.statusText);
  return body;
}

function show(error) {
  $("error").textContent = error ? String(error.message ?? error) : "";
}

async function guarded(work) {
  show(null);
  try { await work(); } catch (error) { show(error); }
}

function cell(row, text) {
  const td = row.insertCell();
  td.textContent = text;
  return td;
}

function when(ms) {
  return typeof ms === "number" ? new Date(ms).toISOString() : "";
}

async function loadTables() {
  const tables = (knownTables = await api("tables"));
  const body = $("tables").tBodies[0];
  body.replaceChildren();
  for (const table of tables) {
    const row = body.insertRow();
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.textContent = table.name;
    button.addEventListener("click", () => guarded(() => chooseTable(table)));
    row.insertCell().append(button);
    cell(row, String(table.count)).dataset.table = table.name;
  }
}

async function chooseTable(table) {
  $("doc-table").value = table.name;
  const select = $("doc-index");
  select.replaceChildren(...table.indexes.map((index) => {
    const option = document.createElement("option");
    option.value = index.name;
    option.textContent = `${index.name} (${index.fields.join(", ") || "creation time"})`;
    return option;
  }));
  $("doc-eq").value = "";
  await loadDocuments(true);
}

async function loadDocuments(fresh) {
  const params = new URLSearchParams({ table: $("doc-table").value });
  if ($("doc-index").value) params.set("index", $("doc-index").value);
  if ($("doc-eq").value.trim()) params.set("eq", $("doc-eq").value.trim());
  if (!fresh && nextCursor) params.set("cursor", nextCursor);
  const page = await api(`documents?${params}`);
  const list = $("documents");
  if (fresh) list.replaceChildren();
  for (const doc of page.page) {
    const item = document.createElement("li");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "link";
    open.textContent = doc._id;
    open.addEventListener("click", () => guarded(() => openDocument(doc._id)));
    item.append(open, " ", JSON.stringify(doc).slice(0, 160));
    list.append(item);
  }
  nextCursor = page.isDone ? null : page.continueCursor;
  $("more").hidden = page.isDone;
}

async function openDocument(id) {
  $("document-id").value = id;
  const found = await api(`document?id=${encodeURIComponent(id)}`);
  $("document").textContent = `${found.table}\n${JSON.stringify(found.document, null, 2)}`;
}

async function loadScheduled() {
  const scheduled = await api("scheduled");
  const jobs = $("jobs").tBodies[0];
  jobs.replaceChildren();
  for (const job of scheduled.page) {
    const row = jobs.insertRow();
    cell(row, job.name);
    cell(row, job.state?.kind ?? "");
    cell(row, when(job.scheduledTime));
  }
  const crons = $("crons").tBodies[0];
  crons.replaceChildren();
  for (const cron of scheduled.crons) {
    const row = crons.insertRow();
    cell(row, cron.name);
    cell(row, when(cron.nextRun));
  }
}

async function runFunction() {
  let args;
  try { args = JSON.parse($("run-args").value || "{}"); } catch (error) {
    throw new Error(`Arguments are not JSON: ${error.message}`);
  }
  const outcome = await api("run", {
    method: "POST",
    body: JSON.stringify({ path: $("run-path").value.trim(), args }),
  });
  const shown = outcome.status === "success"
    ? `success\n${JSON.stringify(outcome.value, null, 2)}`
    : `error\n${outcome.errorMessage}`;
  const lines = outcome.logLines?.length ? `\n\nlogs:\n${outcome.logLines.join("\n")}` : "";
  $("run-result").textContent = shown + lines;
  await loadLogs();
}

async function loadLogs() {
  const { lines } = await api("logs");
  $("logs").textContent = lines.map((l) => `${when(l.time * 1000)} ${l.function} ${l.line}`).join("\n");
}

function signOut(message = "") {
  $("sign-in-error").textContent = message;
  sessionStorage.removeItem(KEY);
  $("browser").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
}

async function signIn() {
  $("sign-in").hidden = true;
  $("browser").hidden = false;
  $("sign-out").hidden = false;
  $("sign-in-error").textContent = "";
  await guarded(async () => { await loadTables(); await loadScheduled(); await loadLogs(); });
}

$("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("admin-key").value.trim());
  $("admin-key").value = "";
  signIn();
});
$("sign-out").addEventListener("click", () => signOut());
$("documents-form").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(async () => {
    const table = knownTables.find((t) => t.name === $("doc-table").value);
    if (table && !$("doc-index").options.length) await chooseTable(table);
    else await loadDocuments(true);
  });
});
$("more").addEventListener("click", () => guarded(() => loadDocuments(false)));
$("document-form").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(() => openDocument($("document-id").value.trim()));
});
$("scheduled-refresh").addEventListener("click", () => guarded(loadScheduled));
$("run-form").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(runFunction);
});
$("logs-refresh").addEventListener("click", () => guarded(loadLogs));
if (sessionStorage.getItem(KEY)) signIn();
