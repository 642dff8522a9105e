// The one Convex client of the page, connected to Owlat's client API. The server writes its
// URL into <meta name="owlat-client-url">; `vite` (npm run dev) uses VITE_OWLAT_CLIENT_URL
// or Owlat's default port.
import { ConvexClient } from "convex/browser";

function clientUrl(): string {
  const meta = document.querySelector<HTMLMetaElement>('meta[name="owlat-client-url"]');
  return meta?.content || import.meta.env.VITE_OWLAT_CLIENT_URL || "http://127.0.0.1:3210";
}

export const convex = new ConvexClient(clientUrl());
