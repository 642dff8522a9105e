// Calls on the types `owlat codegen` writes for tests/fixtures/codegen_app (in ./_generated):
// every line without a directive must type-check; every `@ts-expect-error` line must not.
import type { ConvexClient } from "convex/browser";
import type { FunctionArgs, FunctionReturnType } from "convex/server";
import { api, internal } from "./_generated/api";
import type { DataModel, Doc, Id, TableNames } from "./_generated/dataModel";

declare const client: ConvexClient;
declare const noteId: Id<"notes">;
declare const personId: Id<"people">;
declare const blob: ArrayBuffer;
const note = { title: "t", size: 3n, color: "red", scores: { a: 1 }, blob, author: personId, payload: [1, { x: null }] } as const;

// arguments, from the validators
void client.query(api.notes.get, { noteId });
void client.mutation(api.notes.create, { ...note, tags: ["a"], "with-dash": true });
void client.mutation(api.notes.create, { ...note, scores: {} });
void client.mutation(api.admin.userTools.rename, { personId, name: null });
void client.mutation(api.admin.userTools.rename, { personId, name: "Ada" });
void client.query(api.notes.anything, { whatever: 1 }); // no validator: any arguments
void client.query(api.notes.count, {});
void client.action(api.notes.repeat, {});
void client.action(api.notes.repeat, { times: 2 });
const createArgs: FunctionArgs<typeof api.notes.create> = { ...note };

// results, from `returns=` validators (`any` without one)
async function results(): Promise<void> {
  const found = await client.query(api.notes.get, { noteId });
  if (found !== null) {
    const title: string = found.title;
    const color: "red" | "blue" = found.color;
    const id: Id<"notes"> = found._id;
    void [title, color, id];
  }
  const created: Id<"notes"> = await client.mutation(api.notes.create, createArgs);
  const threes: 3[] = await client.action(api.notes.repeat, {});
  const counted: number = await client.query(api.notes.count, {});
  void [created, threes, counted];
  // @ts-expect-error the result is an object or null, not a string
  const wrong: string = await client.query(api.notes.get, { noteId });
  void wrong;
}
const purged: FunctionReturnType<typeof internal.notes.purge> = null;

// documents and the data model
declare const doc: Doc<"notes">;
const size: bigint = doc.size;
const version: 2n | 3 | true = doc.version;
const pinned: boolean = doc.meta.pinned;
const body: string | undefined = doc.body;
const author: Id<"people"> = doc.author;
const file: Id<"_storage"> | undefined = ({} as Doc<"people">).file;
const created: number = doc._creationTime;
const loose: unknown = ({} as Doc<"loose">).anything;
const tables: TableNames[] = ["notes", "people", "loose"];
const byAuthor: DataModel["notes"]["indexes"]["by_author"] = ["author", "title", "_creationTime"];
const paths: DataModel["notes"]["fieldPaths"][] = ["meta.color", "scores.anyKey", "_id"];
void [results, purged, size, version, pinned, body, author, file, created, loose, tables, byAuthor, paths];

// must not type-check
// @ts-expect-error an id of another table
void client.query(api.notes.get, { noteId: personId });
// @ts-expect-error a plain string is not an id
void client.query(api.notes.get, { noteId: "k57a" });
// @ts-expect-error a required argument is missing
void client.mutation(api.admin.userTools.rename, { personId });
// @ts-expect-error an argument no validator declares
void client.query(api.notes.get, { noteId, extra: 1 });
// @ts-expect-error a literal outside the union
void client.mutation(api.notes.create, { ...note, color: "green" });
// @ts-expect-error v.int64() takes a bigint, not a number
void client.mutation(api.notes.create, { ...note, size: 3 });
// @ts-expect-error v.record(v.string(), v.number()) values are numbers
void client.mutation(api.notes.create, { ...note, scores: { a: "1" } });
// @ts-expect-error an optional argument is not nullable
void client.action(api.notes.repeat, { times: null });
// @ts-expect-error no arguments means none
void client.query(api.notes.count, { x: 1 });
// @ts-expect-error an unknown function
void client.query(api.notes.missing, {});
// @ts-expect-error a mutation is not a query
void client.query(api.notes.create, createArgs);
// @ts-expect-error internal functions are not on `api`
void client.mutation(api.notes.purge, { noteId });
// @ts-expect-error an unknown table
type Unknown = Doc<"nope">;
// @ts-expect-error a field the schema does not have
void doc.missing;
// @ts-expect-error an index the table does not have
type NoIndex = DataModel["notes"]["indexes"]["by_title"];
