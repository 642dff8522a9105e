// The contacts export: every live contact of the active organization as one CSV file,
// read page by page (`contactImports:exportCsvPage`, admins) and saved by the browser.
import { api } from "./convex/_generated/api";
import { convex } from "./convex/client";
import { csvText } from "./csv";

const PAGE = 1000;

/** Download `contacts.csv`; `onProgress` hears the rows read so far. */
export async function exportContacts(onProgress: (rows: number) => void): Promise<void> {
  const rows: string[][] = [];
  let header: string[] = [];
  let cursor: string | null = null;
  for (;;) {
    const page: { header: string[]; rows: string[][]; isDone: boolean; continueCursor: string } =
      await convex.query(api.contactImports.exportCsvPage, { cursor, numItems: PAGE });
    header = page.header;
    rows.push(...page.rows);
    onProgress(rows.length);
    if (page.isDone) break;
    cursor = page.continueCursor;
  }
  const url = URL.createObjectURL(
    new Blob([csvText([header, ...rows])], { type: "text/csv;charset=utf-8" }),
  );
  const link = document.createElement("a");
  link.href = url;
  link.download = "contacts.csv";
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
