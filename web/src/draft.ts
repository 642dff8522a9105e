// An editor's working copy of a server document: it follows the document live while it has
// no unsaved changes, and keeps them (not overwritten by pushes) until they are saved.
import { computed, onScopeDispose, ref, watch, type ComputedRef, type Ref } from "vue";
import { onBeforeRouteLeave } from "vue-router";

export type Draft<D> = {
  draft: Ref<D | null>;
  /** The working copy differs from what was last loaded or saved. */
  dirty: ComputedRef<boolean>;
  /** The document changed on the server while this copy had unsaved changes (a save
   * replaces that change). */
  changedElsewhere: Ref<boolean>;
  /** Call after a save succeeded: the working copy is what the server holds now. */
  saved: () => void;
  /** Drop the unsaved changes: back to the document as the server last pushed it. */
  discard: () => void;
};

export function useDraft<Row, D>(
  source: () => Row | null | undefined,
  toDraft: (row: Row) => D,
): Draft<D> {
  const draft = ref<D | null>(null) as Ref<D | null>;
  const snapshot = ref("");
  const dirty = computed(() => !!draft.value && JSON.stringify(draft.value) !== snapshot.value);
  const changedElsewhere = ref(false);
  function load(row: Row | null | undefined): void {
    changedElsewhere.value = false;
    if (!row) return;
    draft.value = toDraft(row);
    snapshot.value = JSON.stringify(draft.value);
  }
  watch(
    source,
    (row) => {
      if (!dirty.value) load(row);
      else if (row) changedElsewhere.value = true;
    },
    { immediate: true },
  );
  return {
    draft,
    dirty,
    changedElsewhere,
    saved: () => {
      snapshot.value = JSON.stringify(draft.value);
      changedElsewhere.value = false;
    },
    discard: () => load(source()),
  };
}

/** Asks before leaving the page (another screen, a reload, closing the tab) while `dirty`. */
export function useLeaveGuard(dirty: Ref<boolean>): void {
  onBeforeRouteLeave(() => !dirty.value || window.confirm("Leave without saving your changes?"));
  const warn = (event: BeforeUnloadEvent): void => {
    if (dirty.value) event.preventDefault();
  };
  window.addEventListener("beforeunload", warn);
  onScopeDispose(() => window.removeEventListener("beforeunload", warn));
}
