// Accounts and sessions through BetterAuth's own client (npm `better-auth`, with the
// organization and JWT plugins) against Owlat's /api/auth on the same origin; the session
// cookie stays in the browser. The Convex client authenticates with the session's JWT
// (`/api/auth/token`), fetched again whenever it expires.
import { createAuthClient } from "better-auth/client";
import { jwtClient, organizationClient } from "better-auth/client/plugins";
import { reactive } from "vue";
import { convex } from "./convex/client";

export const authClient = createAuthClient({
  baseURL: window.location.origin,
  plugins: [organizationClient(), jwtClient()],
});

export type SessionUser = { id: string; email: string; name: string; emailVerified: boolean };

/** Who is signed in on this page (`ready` once the first session check answered). */
export const auth = reactive<{ ready: boolean; user: SessionUser | null }>({
  ready: false,
  user: null,
});

// get-session answers a fresh JWT in its `set-auth-jwt` header: the Convex client starts
// with it rather than asking /api/auth/token once more.
let sessionToken: string | null = null;

async function fetchToken({ forceRefreshToken }: { forceRefreshToken: boolean }) {
  const token = sessionToken;
  sessionToken = null;
  if (token && !forceRefreshToken) return token;
  const { data } = await authClient.token();
  return data?.token ?? null;
}

let checking: Promise<void> | null = null;

/** Ask the server who is signed in (once, unless `again`), and point Convex at that user. */
export function loadSession(again = false): Promise<void> {
  if (checking && !again) return checking;
  checking = (async () => {
    const { data } = await authClient.getSession({
      fetchOptions: {
        onSuccess: ({ response }) => {
          sessionToken = response.headers.get("set-auth-jwt");
        },
      },
    });
    auth.user = (data?.user as SessionUser | undefined) ?? null;
    if (auth.user) convex.setAuth(fetchToken);
    else convex.client.clearAuth();
    auth.ready = true;
  })();
  return checking;
}

export async function signOut(): Promise<void> {
  await authClient.signOut();
  await loadSession(true);
}

/** The message of a BetterAuth error answer, for the screen. */
export function errorText(error: { message?: string; statusText?: string } | null): string {
  return error?.message || error?.statusText || "Something went wrong; please try again.";
}
