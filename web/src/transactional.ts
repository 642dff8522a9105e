// Transactional emails on the dashboard: their shape, the sample values a page previews
// and test-sends with (typed by the email's data-variable schema), the curl command that
// sends one through POST /api/v1/transactional, and which field a server error names.

import { computed, type Ref } from "vue";

export type VariableType = "string" | "number" | "boolean" | "date";
export const VARIABLE_TYPES: VariableType[] = ["string", "number", "boolean", "date"];

export type TransactionalEmail = {
  _id: string;
  name: string;
  slug: string;
  subject: string;
  previewText?: string;
  content: string;
  status: "draft" | "published" | "pending_review";
  dataVariablesSchema?: Record<string, VariableType>;
  defaultLanguage?: string;
  supportedLanguages?: string[];
  /** JSON of {language: {subject, previewText?, blocks: {blockId: {html?, buttonText?, alt?}}}} */
  translations?: string;
  publishedAt?: number;
  updatedAt: number;
};

export type Translation = {
  subject: string;
  previewText?: string | null;
  blocks: Record<string, { html?: string; buttonText?: string; alt?: string }>;
};

export function translationsOf(email: TransactionalEmail): Record<string, Translation> {
  return email.translations ? (JSON.parse(email.translations) as Record<string, Translation>) : {};
}

/** The sample values typed in (text) as the schema's types: a number field's text as a
 * number, a boolean's as true/false; empty fields are left out. */
export function typedVariables(
  schema: Record<string, VariableType>,
  samples: Record<string, string>,
): Record<string, string | number | boolean> {
  const typed: Record<string, string | number | boolean> = {};
  for (const [name, type] of Object.entries(schema)) {
    const text = (samples[name] ?? "").trim();
    if (!text) continue;
    if (type === "number" && !Number.isNaN(Number(text))) typed[name] = Number(text);
    else if (type === "boolean" && (text === "true" || text === "false"))
      typed[name] = text === "true";
    else typed[name] = text;
  }
  return typed;
}

/** A sample value of each type for the curl example when none was typed in. */
const EXAMPLE: Record<VariableType, string | number | boolean> = {
  string: "text",
  number: 42,
  boolean: true,
  date: "2026-01-31T12:00:00Z",
};

/** The curl command sending `slug` to a recipient with every variable of the schema. */
export function curlExample(
  origin: string,
  slug: string,
  schema: Record<string, VariableType>,
  samples: Record<string, string | number | boolean>,
): string {
  const dataVariables = Object.fromEntries(
    Object.entries(schema).map(([name, type]) => [name, samples[name] ?? EXAMPLE[type]]),
  );
  const body = JSON.stringify({ slug, email: "recipient@example.com", dataVariables }, null, 2);
  return [
    `curl -X POST ${origin}/api/v1/transactional \\`,
    `  -H "Authorization: Bearer $OWLAT_API_KEY" \\`,
    `  -H "Content-Type: application/json" \\`,
    `  -d '${body.replace(/'/g, "'\\''")}'`,
  ].join("\n");
}

/** The field a server error names by its path ("content[0].type: unknown block" →
 * "content"), or "" when it names none of `fields`. */
export function fieldOfError(message: string, fields: readonly string[]): string {
  const name = /^([A-Za-z]+)[.[: ]/.exec(message)?.[1] ?? "";
  return fields.includes(name) ? name : "";
}

/** Which of `fields` a save's refusal (`error`) names, and `errorAt(field)`: the refusal as
 * that field's `error-messages` (none for the other fields). */
export function useFieldErrors(error: Ref<string>, fields: readonly string[]) {
  const errorField = computed(() => fieldOfError(error.value, fields));
  return {
    errorField,
    errorAt: (field: string): string[] => (errorField.value === field ? [error.value] : []),
  };
}
