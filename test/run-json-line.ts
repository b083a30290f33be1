// Run a process that prints its result as one JSON line, last: the cross-runtime suites and the
// per-runtime benches spawn Deno, Bun and Node this way.
import { spawn } from "node:child_process";
import { join } from "node:path";

export const REPO_ROOT = join(import.meta.dirname, "..");

/** The last stdout line parsed as JSON, and the wall time from spawn to exit. */
export function runJsonLine<T>(cmd: string, args: string[], opts: { cwd?: string; stderr?: "pipe" | "inherit" } = {}): Promise<{ value: T; wallMs: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? REPO_ROOT, env: { ...process.env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", opts.stderr ?? "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (b) => (stdout += b));
    child.stderr?.on("data", (b) => (stderr += b));
    child.on("error", reject);
    child.on("close", (code) => {
      const line = stdout.trim().split("\n").pop() ?? "";
      try {
        resolve({ value: JSON.parse(line) as T, wallMs: performance.now() - t0 });
      } catch {
        reject(new Error(`${cmd} ${args.join(" ")} exited ${code} without a result:\n${stdout.slice(-2000)}\n${stderr.slice(-2000)}`));
      }
    });
  });
}
