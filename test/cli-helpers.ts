// Run `deft` as a real process under Node, Deno or Bun.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ROOT = join(import.meta.dirname, "..");
const bin = (name: string) => join(ROOT, "node_modules", ".bin", name);

export type RuntimeName = "node" | "deno" | "bun";

export function deftCommand(runtime: RuntimeName, args: string[]): [string, string[]] {
  switch (runtime) {
    case "node":
      return [process.execPath, ["--import", "tsx", "runtimes/node/cli.ts", ...args]];
    case "deno":
      return [bin("deno"), ["run", "-A", "runtimes/deno/main.ts", ...args]];
    case "bun":
      return [bin("bun"), ["runtimes/bun/main.ts", ...args]];
  }
}

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function startDeft(runtime: RuntimeName, args: string[], env: Record<string, string | undefined> = {}): { child: ChildProcess; done: Promise<Ran> } {
  const [cmd, argv] = deftCommand(runtime, args);
  // The caller's ANTHROPIC_* variables must not leak into the child unless given.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ANTHROPIC_") && !k.startsWith("DEFT_")));
  // Each run its own state dir (unless the test names one): runs in parallel never share a store.
  const stateDir = mkdtempSync(join(tmpdir(), "deft-test-state-"));
  const child = spawn(cmd, argv, { cwd: ROOT, env: { ...base, NO_COLOR: "1", DEFT_STATE_DIR: stateDir, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const done = new Promise<Ran>((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
  return { child, done };
}

export function runDeft(runtime: RuntimeName, args: string[], env: Record<string, string | undefined> = {}): Promise<Ran> {
  return startDeft(runtime, args, env).done;
}
