// The row a confirmation dialog asks about: `pending.value = row` opens it, closing the
// dialog (`open`, its v-model) forgets the row.
import { computed, ref, type Ref, type WritableComputedRef } from "vue";

export function usePending<Row>(): { pending: Ref<Row | null>; open: WritableComputedRef<boolean> } {
  const pending = ref<Row | null>(null) as Ref<Row | null>;
  const open = computed({
    get: () => pending.value !== null,
    set: (value: boolean) => {
      if (!value) pending.value = null;
    },
  });
  return { pending, open };
}
