// Bun's npm package ships a stub binary that its own install script replaces.
// When npm skips install scripts (allowScripts), repair it here so `npm ci` is the only step.
import { existsSync } from "node:fs";
import { execFileSync } from "node:child_process";
const dir = new URL("../node_modules/bun/", import.meta.url);
if (existsSync(new URL("install.js", dir))) {
  try {
    execFileSync(process.execPath, ["-e", "require('child_process').execFileSync(require('path').join(__dirname,'bin','bun.exe'),['--version'])"], { cwd: dir, stdio: "ignore" });
  } catch {
    execFileSync(process.execPath, ["install.js"], { cwd: dir, stdio: "inherit" });
  }
}
