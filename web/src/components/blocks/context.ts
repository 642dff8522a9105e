// What every list of a block editor shares (the lists nest: columns, containers), handed
// down by provide/inject rather than through each level's props.
import type { ComputedRef, InjectionKey, Ref } from "vue";
import type { BlockSchema, EditorBlock } from "./model";

export type EditorContext = {
  schema: BlockSchema;
  readonly: ComputedRef<boolean>;
  selectedId: Ref<string | null>;
  /** The server's error about a block: the block, its field and the reason. */
  error: Readonly<Ref<{ block: EditorBlock; field: string; reason: string } | null>>;
  /** Whether top-level blocks may be saved as saved blocks (the role may manage them). */
  canSaveBlocks: ComputedRef<boolean>;
  saveAsSavedBlock: (blocks: EditorBlock[], index: number) => void;
};

export const EDITOR: InjectionKey<EditorContext> = Symbol("block editor");
