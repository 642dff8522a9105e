// Vue composables over the Convex client, like the seed's `~/composables/convex`:
//
//   const contacts = useConvexQuery(api.contacts.listFromSession, () => ({ ... }));
//   const create = useConvexMutation(api.contacts.createFromSession);
//   await create({ email: "user@example.com" });
//
// A query is a live subscription: `data` changes whenever the server pushes a new result,
// and the subscription follows its arguments (a getter or ref; "skip" subscribes to
// nothing) and ends with the component. `usePagedQuery` pages through a paginated query
// (`paginationOpts`) one live page at a time.
import type {
  FunctionArgs,
  FunctionReference,
  FunctionReturnType,
  PaginationResult,
} from "convex/server";
import {
  computed,
  onScopeDispose,
  ref,
  shallowRef,
  toValue,
  watch,
  type ComputedRef,
  type MaybeRefOrGetter,
  type Ref,
} from "vue";
import { convex } from "./client";

export type QueryState<T> = {
  /** The latest result (kept while new arguments load), undefined before the first and
   * while skipped. */
  data: Ref<T | undefined>;
  error: Ref<Error | undefined>;
  /** True until the result for the current arguments arrived. */
  isLoading: Ref<boolean>;
};

export function useConvexQuery<Query extends FunctionReference<"query">>(
  query: Query,
  args: MaybeRefOrGetter<FunctionArgs<Query> | "skip">,
): QueryState<FunctionReturnType<Query>> {
  const data = shallowRef<FunctionReturnType<Query>>();
  const error = shallowRef<Error>();
  const isLoading = ref(true);
  let unsubscribe: (() => void) | undefined;

  const stop = watch(
    () => {
      const value = toValue(args);
      return value === "skip" ? "skip" : JSON.stringify(value);
    },
    (key) => {
      unsubscribe?.();
      unsubscribe = undefined;
      if (key === "skip") {
        data.value = undefined; // nobody's data outlives a skip (e.g. signing out)
        error.value = undefined;
        isLoading.value = false;
        return;
      }
      isLoading.value = true;
      unsubscribe = convex.onUpdate(
        query,
        JSON.parse(key) as FunctionArgs<Query>,
        (result) => {
          data.value = result;
          error.value = undefined;
          isLoading.value = false;
        },
        (failure) => {
          error.value = failure;
          isLoading.value = false;
        },
      );
    },
    { immediate: true },
  );
  onScopeDispose(() => {
    stop();
    unsubscribe?.();
  });
  return { data, error, isLoading };
}

export function useConvexMutation<Mutation extends FunctionReference<"mutation">>(
  mutation: Mutation,
): (args: FunctionArgs<Mutation>) => Promise<Awaited<FunctionReturnType<Mutation>>> {
  return (args) => convex.mutation(mutation, args);
}

export function useConvexAction<Action extends FunctionReference<"action">>(
  action: Action,
): (args: FunctionArgs<Action>) => Promise<Awaited<FunctionReturnType<Action>>> {
  return (args) => convex.action(action, args);
}

/** One answer of a query, not a subscription (e.g. a record just created). */
export function queryOnce<Query extends FunctionReference<"query">>(
  query: Query,
  args: FunctionArgs<Query>,
): Promise<Awaited<FunctionReturnType<Query>>> {
  return convex.query(query, args);
}

type PagedArgs<Query extends FunctionReference<"query">> = Omit<
  FunctionArgs<Query>,
  "paginationOpts"
>;

export type PagedQuery<Item> = {
  page: ComputedRef<Item[]>;
  /** 0 for the first page. */
  pageIndex: Ref<number>;
  hasNext: ComputedRef<boolean>;
  isLoading: Ref<boolean>;
  error: Ref<Error | undefined>;
  next: () => void;
  previous: () => void;
};

let subscriptions = 0;

/** One live page of a paginated query at a time, with next/previous; back to the first
 * page whenever the other arguments change (a new search); `"skip"` subscribes nothing.
 *
 * A live page keeps the end it first had (the server pins it, as Convex does), so rows
 * inserted inside it make it grow: the table shows them all (the next page starts after
 * the last). Past twice the page size (a large import), or when a page that answered
 * fails (grown past what one query may read), the page starts afresh. `paginationOpts.id` keeps each page's subscription its own. */
export function usePagedQuery<Query extends FunctionReference<"query">, Item = unknown>(
  query: Query,
  args: MaybeRefOrGetter<PagedArgs<Query> | "skip">,
  pageSize: number,
): PagedQuery<Item> {
  const cursors = ref<(string | null)[]>([null]);
  const pageIndex = ref(0);
  const id = ref(++subscriptions);
  watch(
    () => JSON.stringify(toValue(args)),
    () => {
      cursors.value = [null];
      pageIndex.value = 0;
    },
  );
  const { data, error, isLoading } = useConvexQuery(query, () => {
    const current = toValue(args);
    if (current === "skip") return "skip";
    return {
      ...current,
      paginationOpts: {
        numItems: pageSize,
        cursor: cursors.value[pageIndex.value] ?? null,
        id: id.value,
      },
    } as FunctionArgs<Query>;
  });
  const result = computed(() => data.value as PaginationResult<Item> | undefined);
  let answered = false; // the last update was a result, not an error
  watch([result, error], ([current, failure]) => {
    if (failure ? answered : current && current.page.length > 2 * pageSize) {
      id.value = ++subscriptions; // a fresh page that fails at once shows its error
    }
    answered = !failure;
  });
  const hasNext = computed(() => !!result.value && !result.value.isDone);
  return {
    page: computed(() => result.value?.page ?? []),
    pageIndex,
    hasNext,
    isLoading,
    error,
    next() {
      if (!result.value || result.value.isDone) return;
      cursors.value[pageIndex.value + 1] = result.value.continueCursor;
      pageIndex.value += 1;
    },
    previous() {
      if (pageIndex.value > 0) pageIndex.value -= 1;
    },
  };
}

/** What to show for a failed call: a ConvexError's data (Owlat's functions put the
 * sentence there, e.g. "Contact already exists"), else the error's message. */
export function failureText(failure: unknown): string {
  const data = (failure as { data?: unknown } | null)?.data;
  if (typeof data === "string") return data;
  return failure instanceof Error ? failure.message : String(failure);
}

export type Call<Args extends unknown[], Result> = {
  /** Runs the call; resolves to its result, or undefined when it failed (see `error`). */
  run: (...args: Args) => Promise<Result | undefined>;
  busy: Ref<boolean>;
  /** The last failure's text ("" after a success). */
  error: Ref<string>;
};

/** A form's call to the server with its busy flag and error text, e.g.
 * `const save = useCall(useConvexMutation(api.mailingLists.create))`. */
export function useCall<Args extends unknown[], Result>(
  call: (...args: Args) => Promise<Result>,
): Call<Args, Result> {
  const busy = ref(false);
  const error = ref("");
  return {
    busy,
    error,
    async run(...args) {
      busy.value = true;
      error.value = "";
      try {
        return await call(...args);
      } catch (failure) {
        error.value = failureText(failure);
        return undefined;
      } finally {
        busy.value = false;
      }
    },
  };
}
