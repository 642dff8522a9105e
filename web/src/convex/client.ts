// The one Convex client of the page, connected to Owlat's client API. The server writes its
// URL into <meta name="owlat-client-url">; `vite` (npm run dev) uses VITE_OWLAT_CLIENT_URL
// or Owlat's default port.
import { ConvexClient } from "convex/browser";

function clientUrl(): string {
  const meta = document.querySelector<HTMLMetaElement>('meta[name="owlat-client-url"]');
  return meta?.content || import.meta.env.VITE_OWLAT_CLIENT_URL || "http://127.0.0.1:3210";
}

type Logger = Exclude<ConstructorParameters<typeof ConvexClient>[1], undefined>["logger"];

// The client logs every failed mutation as a console error; a refusal (a ConvexError: the
// screen shows its sentence, e.g. "Contact already exists") is only a warning.
const logger: Logger = {
  logVerbose: () => undefined,
  log: (...args: unknown[]) => console.log(...args),
  warn: (...args: unknown[]) => console.warn(...args),
  error: (...args: unknown[]) =>
    (String(args[0]).includes("Uncaught ConvexError") ? console.warn : console.error)(...args),
};

export const convex = new ConvexClient(clientUrl(), { logger });
