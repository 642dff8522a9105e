// The block editor's model: a template's content is upstream's `EditorBlock[]` (JSON text
// on the server); the field kinds come from the server's schema (`blockSchema:get`, which
// describes lib/rendering/_schema.py), so the editor holds no copy of it.

export type SavedBlockRef = { blockId: string; groupId?: string; blockName?: string };
export type EditorBlock = {
  id: string;
  type: string;
  content: Record<string, unknown>;
  savedBlockRef?: SavedBlockRef;
};

export type FieldSpec = {
  name?: string;
  kind: string;
  required: boolean;
  maxChars?: number;
  low?: number;
  high?: number;
  integer?: boolean;
  choices?: string[];
  hint?: string;
  image?: boolean;
  fields?: FieldSpec[];
  item?: FieldSpec;
  minItems?: number;
  maxItems?: number;
};
export type TypeSpec = {
  type: string;
  fields: FieldSpec[];
  children: "columns" | "items" | "sections" | null;
};
export type BlockSchema = {
  types: TypeSpec[];
  common: FieldSpec[];
  columnItemTypes: string[];
  containerItemTypes: string[];
};

/** A saved block as `emailBlocks:list` answers it. */
export type SavedBlockRow = {
  _id: string;
  name: string;
  description?: string;
  content: string;
  blockCount: number;
  usageCount: number;
  updatedAt: number;
  propagation?: unknown;
};

/** A list of blocks with the types it may hold (a column holds fewer). */
export type BlockListRef = { label: string; blocks: EditorBlock[]; allowed: string[] };

const ACRONYMS: Record<string, string> = { url: "URL", html: "HTML", css: "CSS", x: "X", y: "Y" };

const LABELS: Record<string, string> = { src: "Image URL", alt: "Alt text" };

/** "backgroundColor" → "Background color", "linkUrl" → "Link URL". */
export function humanize(name: string): string {
  if (LABELS[name]) return LABELS[name];
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .toLowerCase()
    .split(" ")
    .map((word) => ACRONYMS[word] ?? word)
    .join(" ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** A block's name in the outline: its type and a piece of its text. */
export function summary(block: EditorBlock): string {
  const content = block.content;
  const text = (value: unknown): string =>
    typeof value === "string" ? value.replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim() : "";
  const words =
    block.type === "text" || block.type === "rawHtml"
      ? text(content.html)
      : block.type === "button"
        ? text(content.text)
        : block.type === "image"
          ? text(content.alt)
          : "";
  const label = humanize(block.type);
  return words ? `${label}: ${words.length > 40 ? `${words.slice(0, 40)}…` : words}` : label;
}

/** A fresh block id (unique within a template: time and randomness). */
export function newId(): string {
  return `b${Date.now().toString(36)}${Math.random().toString(36).slice(2, 7)}`;
}

/** The block lists nested in `block` (a column each; container and hero items; accordion
 * sections' items), as block_tree.child_lists walks them. */
export function childLists(block: EditorBlock, schema: BlockSchema): BlockListRef[] {
  const content = block.content;
  if (block.type === "columns" && Array.isArray(content.columns)) {
    return (content.columns as EditorBlock[][]).map((blocks, i) => ({
      label: `Column ${i + 1}`,
      blocks,
      allowed: schema.columnItemTypes,
    }));
  }
  if ((block.type === "container" || block.type === "hero") && Array.isArray(content.items)) {
    const blocks = content.items as EditorBlock[];
    return [{ label: "Items", blocks, allowed: schema.containerItemTypes }];
  }
  if (block.type === "accordion" && Array.isArray(content.sections)) {
    return (content.sections as { title?: string; items: EditorBlock[] }[]).map((s, i) => ({
      label: s.title || `Section ${i + 1}`,
      blocks: s.items,
      allowed: schema.containerItemTypes,
    }));
  }
  return [];
}

/** Every block, depth first. */
export function* walk(blocks: EditorBlock[], schema: BlockSchema): Generator<EditorBlock> {
  for (const block of blocks) {
    yield block;
    for (const list of childLists(block, schema)) yield* walk(list.blocks, schema);
  }
}

/** A copy of `block` (and its children) with fresh ids. */
export function copyBlock(block: EditorBlock, schema: BlockSchema): EditorBlock {
  const copy = JSON.parse(JSON.stringify(block)) as EditorBlock;
  for (const inner of walk([copy], schema)) inner.id = newId();
  return copy;
}

/** One row of a list: a block, or the run of blocks one saved-block insertion made
 * (neighbours with the same `blockId` and `groupId`: the server replaces the run as one). */
export type Unit = { start: number; end: number; ref?: SavedBlockRef };

function sameGroup(a: SavedBlockRef | undefined, b: SavedBlockRef | undefined): boolean {
  return !!a && !!b && a.blockId === b.blockId && a.groupId === b.groupId;
}

export function unitsOf(blocks: EditorBlock[]): Unit[] {
  const units: Unit[] = [];
  for (let i = 0; i < blocks.length; ) {
    const ref = blocks[i]!.savedBlockRef;
    let end = i + 1;
    while (ref && end < blocks.length && sameGroup(ref, blocks[end]!.savedBlockRef)) end += 1;
    units.push({ start: i, end, ref });
    i = end;
  }
  return units;
}

/** A server error's place: "content[3].columns[1][0].url: must be …" → the block at
 * content[3] > column 1 > block 0 and its field `url`; null when the message names no
 * block (then it is shown above the editor). */
export function errorPlace(
  message: string,
  blocks: EditorBlock[],
  schema: BlockSchema,
): { block: EditorBlock; field: string; reason: string } | null {
  const match = /^content((?:\[\d+\]|\.\w+)+):\s*(.*)$/s.exec(message);
  if (!match) return null;
  const tokens = match[1]!.match(/\[\d+\]|\.\w+/g) ?? [];
  const index = (token: string | undefined): number =>
    token?.startsWith("[") ? Number(token.slice(1, -1)) : -1;
  let list: EditorBlock[] | undefined = blocks;
  let block: EditorBlock | undefined;
  let at = 0;
  while (list && at < tokens.length) {
    const next: EditorBlock | undefined = list[index(tokens[at])];
    if (!next) break;
    block = next;
    at += 1;
    list = undefined;
    const [key, i, j] = [tokens[at], tokens[at + 1], tokens[at + 2]];
    const children = schema.types.find((t) => t.type === block!.type)?.children;
    if (children === "columns" && key === ".columns" && index(j) >= 0) {
      list = (block.content.columns as EditorBlock[][] | undefined)?.[index(i)];
      at += 2;
    } else if (children === "items" && key === ".items" && index(i) >= 0) {
      list = block.content.items as EditorBlock[] | undefined;
      at += 1;
    } else if (children === "sections" && key === ".sections" && tokens[at + 2] === ".items") {
      const sections = block.content.sections as { items: EditorBlock[] }[] | undefined;
      list = sections?.[index(i)]?.items;
      at += 3;
    }
  }
  if (!block) return null;
  const field = (tokens[at] ?? "").replace(/^\./, "");
  return { block, field, reason: `${tokens.slice(at).join("").replace(/^\./, "")}: ${match[2]}` };
}

/** Saved block `saved`'s blocks as one insertion: fresh ids (the k-th `<first id>-k`, as
 * the server's sync names them) and a reference with a group of their own. */
export function linkedCopy(saved: SavedBlockRow): EditorBlock[] {
  const blocks = JSON.parse(saved.content) as EditorBlock[];
  const first = newId();
  const ref = { blockId: saved._id, groupId: newId(), blockName: saved.name };
  return blocks.map((block, k) => ({
    ...block,
    id: k === 0 ? first : `${first}-${k}`,
    savedBlockRef: { ...ref },
  }));
}
