// Owlat's dashboard. `npm run build` writes it into the Python package (src/owlat/web/),
// which `owlat dev/serve` serve at / of the site port and the wheel ships.
// `npm run dev` serves it with hot reload, sending /api to a running `owlat dev`.
import { fileURLToPath } from "node:url";
import vue from "@vitejs/plugin-vue";
import { defineConfig } from "vite";
import vuetify from "vite-plugin-vuetify";

const site = process.env.OWLAT_SITE_URL ?? "http://127.0.0.1:3211";

export default defineConfig({
  plugins: [vue(), vuetify({ autoImport: true })],
  build: {
    outDir: fileURLToPath(new URL("../src/owlat/web", import.meta.url)),
    emptyOutDir: true,
    // the hashed assets are all that is cached; no source maps in the wheel
    sourcemap: false,
  },
  server: { proxy: { "/api": site } },
});
