/**
 * How a Deno subprocess isolate is started (shared by the Node and Deno shims, which differ only
 * in how they spawn). From ../shared/notes/platform-facts.md: `--no-remote --no-npm
 * --cached-only` because `import("npm:…")` and remote imports bypass `--allow-net`; `--no-config`
 * saves ~30 ms; a `.js` entry because a `.ts` one costs +150 ms; read/write only the box dir; no
 * net, env, run, ffi or sys permission; `--no-prompt` so a denied permission throws NotCapable.
 */
import type { IsolateLimits } from "./protocol.ts";

/** The guest script's file name in the host's shared dir (see denoGuestArgs). */
export const DENO_GUEST_FILE = "guest.js";

/**
 * `shared` is one directory per host holding the guest script and Deno's cache (DENO_DIR): the
 * same script path every time lets V8's code cache hit, and Deno does not rebuild its cache
 * databases per isolate (a fresh DENO_DIR per isolate cost ~15 ms of a ~70 ms start). The guest
 * cannot read or write it (its permissions name only `box`); Deno's own cache writes are not
 * the guest's. `box` is the isolate's private temp dir, its only readable and writable path.
 */
export function denoGuestArgs(shared: string, box: string, limits: IsolateLimits): string[] {
  return [
    "run",
    "--no-prompt",
    "--no-config",
    "--no-lock",
    "--no-remote",
    "--no-npm",
    "--cached-only",
    `--allow-read=${box}`,
    `--allow-write=${box}`,
    `--v8-flags=--max-old-space-size=${limits.memoryMiB},--stack-size=984`,
    `${shared}/${DENO_GUEST_FILE}`,
  ];
}

/** Environment for the Deno subprocess: nothing of the host's. NO_COLOR keeps error text plain. */
export function denoGuestEnv(shared: string, box: string): Record<string, string> {
  return { DENO_DIR: `${shared}/.deno`, NO_COLOR: "1", HOME: box, PATH: "/usr/bin:/bin" };
}

/** V8's fatal OOM exits Deno with 133 (SIGTRAP) on this platform (platform-facts). */
export const isOomExit = (code: number | null, signal: string | null, stderr: string): boolean =>
  code === 133 || signal === "SIGTRAP" || /out of memory|heap limit/i.test(stderr);
