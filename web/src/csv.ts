// CSV helpers for the import and export screens (RFC 4180 quoting).

/** The header row of a CSV text: its first record's fields, trimmed. */
export function headerOf(text: string): string[] {
  const fields: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (char === '"') quoted = false;
      else field += char;
    } else if (char === '"') quoted = true;
    else if (char === ",") {
      fields.push(field.trim());
      field = "";
    } else if (char === "\n" || char === "\r") break;
    else field += char;
  }
  fields.push(field.trim());
  return fields.map((name) => name.replace(/^\uFEFF/, ""));
}

function quoted(field: string): string {
  return /[",\r\n]/.test(field) ? `"${field.replace(/"/g, '""')}"` : field;
}

/** CSV text of rows (the first is the header), CRLF line ends. */
export function csvText(rows: string[][]): string {
  return rows.map((row) => row.map(quoted).join(",")).join("\r\n") + "\r\n";
}
