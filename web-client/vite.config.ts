// Multi-page build: the client (index.html) and the admin dashboard (admin.html) share modules
// (src/api.ts, src/style.css), which Vite splits into common chunks.
import { resolve } from "node:path";
import { defineConfig } from "vitest/config";

const gateway = process.env.MOONGATE_DEV_GATEWAY ?? "http://127.0.0.1:8080";

export default defineConfig({
  build: {
    target: "es2022",
    outDir: "dist",
    emptyOutDir: true,
    rollupOptions: {
      input: {
        main: resolve(import.meta.dirname, "index.html"),
        admin: resolve(import.meta.dirname, "admin.html"),
      },
    },
  },
  // `npm run dev`: the gateway's API and WebSockets behind Vite's dev server.
  server: {
    proxy: { "/api": { target: gateway, ws: true } },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
