// What a new block of each type starts with: its required fields filled in (an image
// shows the dashboard's own logo until a real URL is set; links point at example.com).
import { newId, type BlockSchema, type EditorBlock, type FieldSpec } from "./model";

const LINK = "https://example.com";
const image = (): string => `${window.location.origin}/favicon.svg`;

const STARTERS: Record<string, () => Record<string, unknown>> = {
  text: () => ({ html: "<p>New text</p>" }),
  image: () => ({ src: image(), alt: "" }),
  button: () => ({ text: "Button", url: LINK }),
  columns: () => ({ columnCount: 2, columns: [[], []] }),
  container: () => ({ items: [] }),
  hero: () => ({ items: [] }),
  accordion: () => ({ sections: [{ id: newId(), title: "Section 1", items: [] }] }),
  social: () => ({ links: [{ platform: "twitter", url: LINK }] }),
  menu: () => ({ items: [{ label: "Home", url: LINK }] }),
  carousel: () => ({ images: [{ src: image(), alt: "" }] }),
  list: () => ({ items: ["First item"] }),
  rawHtml: () => ({ html: "<p>Raw HTML</p>" }),
  video: () => ({ thumbnailUrl: image(), videoUrl: LINK }),
  progressBar: () => ({ value: 50 }),
  table: () => ({ headers: ["Column 1", "Column 2"], rows: [["", ""]] }),
};

/** A value for a required field no starter covers. */
function placeholder(spec: FieldSpec): unknown {
  if (spec.kind === "number") return spec.low ?? 0;
  if (spec.kind === "flag") return false;
  if (spec.kind === "choice") return spec.choices?.[0] ?? "";
  if (spec.kind === "url") return spec.image ? image() : LINK;
  if (spec.kind === "items") return [];
  if (spec.kind === "record") return {};
  return "New text";
}

export function newBlock(type: string, schema: BlockSchema): EditorBlock {
  const content = STARTERS[type]?.() ?? {};
  for (const spec of schema.types.find((t) => t.type === type)?.fields ?? []) {
    if (spec.required && spec.name && !(spec.name in content)) {
      content[spec.name] = placeholder(spec);
    }
  }
  return { id: newId(), type, content };
}

/** A new item of an `items` field (a menu entry, a social link, a list line). */
export function newItem(spec: FieldSpec): unknown {
  if (spec.kind !== "record") return placeholder(spec);
  const item: Record<string, unknown> = {};
  for (const field of spec.fields ?? []) {
    if (field.required && field.name) item[field.name] = placeholder(field);
  }
  return item;
}
