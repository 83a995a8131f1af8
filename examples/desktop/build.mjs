// Bundles the page (src/*.ts → dist/) with esbuild and copies the HTML and
// CSS. `npm run build`; the Tauri config serves dist/.
import { build } from "esbuild";
import { cpSync, mkdirSync, rmSync } from "node:fs";

rmSync("dist", { recursive: true, force: true });
mkdirSync("dist");
await build({
  entryPoints: ["src/main.ts", "src/viewer.ts"],
  bundle: true,
  format: "esm",
  target: "es2020",
  outdir: "dist",
  // The helper package is linked from ../../execra/guest-js: resolve its
  // imports (`@tauri-apps/api`) from this app's node_modules, one copy.
  preserveSymlinks: true,
  logLevel: "warning",
});
for (const f of ["index.html", "viewer.html", "style.css"]) cpSync(`src/${f}`, `dist/${f}`);
