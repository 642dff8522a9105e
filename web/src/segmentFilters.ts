// The segment condition language (lib/segment_filters.py) as the builder edits it.

export type Condition = {
  kind: "contact_property" | "email_activity" | "list_membership";
  field?: string;
  listId?: string;
  operator: string;
  value?: string | number | { amount: number; unit: string };
};
export type Group = { logic: "AND" | "OR"; conditions: (Condition | Group)[] };

export const MAX_DEPTH = 5;

export const BUILT_IN_FIELDS: Record<string, { label: string; type: string }> = {
  email: { label: "Email", type: "string" },
  firstName: { label: "First name", type: "string" },
  lastName: { label: "Last name", type: "string" },
  source: { label: "Source", type: "string" },
  language: { label: "Language", type: "string" },
  timezone: { label: "Time zone", type: "string" },
  createdAt: { label: "Added", type: "date" },
};

export const OPERATORS: Record<string, { title: string; value: string }[]> = {
  string: [
    { title: "is", value: "equals" },
    { title: "is not", value: "not_equals" },
    { title: "contains", value: "contains" },
    { title: "does not contain", value: "not_contains" },
    { title: "starts with", value: "starts_with" },
    { title: "is empty", value: "is_empty" },
    { title: "is not empty", value: "not_empty" },
  ],
  number: [
    { title: "=", value: "equals" },
    { title: "≠", value: "not_equals" },
    { title: ">", value: "gt" },
    { title: "≥", value: "gte" },
    { title: "<", value: "lt" },
    { title: "≤", value: "lte" },
    { title: "is empty", value: "is_empty" },
    { title: "is not empty", value: "not_empty" },
  ],
  boolean: [
    { title: "is yes", value: "is_true" },
    { title: "is no", value: "is_false" },
    { title: "is empty", value: "is_empty" },
    { title: "is not empty", value: "not_empty" },
  ],
  date: [
    { title: "is before", value: "before" },
    { title: "is after", value: "after" },
    { title: "is in the last", value: "in_last" },
    { title: "is not in the last", value: "not_in_last" },
    { title: "is empty", value: "is_empty" },
    { title: "is not empty", value: "not_empty" },
  ],
  activity: [
    { title: "yes", value: "is_true" },
    { title: "no", value: "is_false" },
  ],
  list: [
    { title: "is a member of", value: "equals" },
    { title: "is not a member of", value: "not_equals" },
  ],
};

export const VALUELESS = new Set(["is_empty", "not_empty", "is_true", "is_false"]);

export function isGroup(item: Condition | Group): item is Group {
  return "logic" in item;
}

export function newCondition(): Condition {
  return { kind: "contact_property", field: "email", operator: "contains", value: "" };
}
