// The dashboard's frame: who is signed in, their organizations and the active one with the
// caller's role and permissions (`dashboard:viewer`), as one live query for the whole page.
import { computed, effectScope, watch } from "vue";
import { auth } from "./auth";
import { api } from "./convex/_generated/api";
import { useConvexQuery } from "./convex/composables";

const scope = effectScope(true);

export const viewer = scope.run(() =>
  useConvexQuery(api.dashboard.viewer, () => (auth.user ? {} : "skip")),
)!;

export const activeOrganization = computed(() => viewer.data.value?.organization ?? null);

/** Whether the caller's role in the active organization has `permission`
 * (lib/permissions.py); the server checks it again on every call. */
export function can(permission: string): boolean {
  return activeOrganization.value?.permissions.includes(permission) ?? false;
}

/** Resolves once `condition` holds (e.g. once the pushed viewer shows a change this page
 * just made through /api/auth). */
export function until(condition: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const stop = watch(
      condition,
      (holds) => {
        if (!holds) return;
        queueMicrotask(() => stop());
        resolve();
      },
      { immediate: true },
    );
  });
}
