/**
 * How a Deno subprocess isolate is started (shared by the Node and Deno shims, which differ only
 * in how they spawn). From ../shared/notes/platform-facts.md: `--no-remote --no-npm
 * --cached-only` because `import("npm:…")` and remote imports bypass `--allow-net`; `--no-config`
 * saves ~30 ms; a `.js` entry because a `.ts` one costs +150 ms; read/write only the box dir; no
 * net, env, run, ffi or sys permission; `--no-prompt` so a denied permission throws NotCapable.
 */
import type { IsolateLimits } from "./protocol.ts";

/** The guest script's file name inside the box dir. */
export const DENO_GUEST_FILE = "guest.js";

export function denoGuestArgs(boxDir: string, limits: IsolateLimits): string[] {
  return [
    "run",
    "--no-prompt",
    "--no-config",
    "--no-lock",
    "--no-remote",
    "--no-npm",
    "--cached-only",
    `--allow-read=${boxDir}`,
    `--allow-write=${boxDir}`,
    `--v8-flags=--max-old-space-size=${limits.memoryMiB},--stack-size=984`,
    `${boxDir}/${DENO_GUEST_FILE}`,
  ];
}

/**
 * Environment for the Deno subprocess: nothing of the host's. DENO_DIR points into the box so
 * Deno writes its cache there, and NO_COLOR keeps error text plain.
 */
export function denoGuestEnv(boxDir: string): Record<string, string> {
  return { DENO_DIR: `${boxDir}/.deno`, NO_COLOR: "1", HOME: boxDir, PATH: "/usr/bin:/bin" };
}

/** V8's fatal OOM exits Deno with 133 (SIGTRAP) on this platform (platform-facts). */
export const isOomExit = (code: number | null, signal: string | null, stderr: string): boolean =>
  code === 133 || signal === "SIGTRAP" || /out of memory|heap limit/i.test(stderr);
