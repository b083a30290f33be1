// The Deno subprocess isolate tier, hosted from Node (or Bun): one `deno run` per isolate with no
// permissions beyond its own temp dir, carrying the protocol over stdin/stdout. The Deno shim
// (runtimes/deno/isolates.ts) does the same with Deno.Command.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { DENO_GUEST_FILE, denoGuestArgs, denoGuestEnv, isOomExit } from "../../isolates/deno-guest.ts";
import type { GuestMessage, IsolateChannel, IsolateExit, IsolateHost, IsolateLimits } from "../../isolates/protocol.ts";
import { LineDecoder, stdioGuestScript } from "../../isolates/stdio-guest.ts";
import { DENO_STDIO } from "../deno/guest-io.ts";

/** The deno binary: DEFT_DENO, else the npm package's (a dev dependency), else `deno` on PATH. */
export function denoBinary(env: Record<string, string | undefined> = process.env): string {
  if (env["DEFT_DENO"]) return env["DEFT_DENO"];
  try {
    const bin = join(dirname(createRequire(import.meta.url).resolve("deno/package.json")), "deno");
    if (existsSync(bin)) return bin;
  } catch {}
  return "deno";
}

/** Stray stdout and stderr kept per isolate, to explain a crash. */
const STDERR_KEEP = 4096;

export function denoSubprocessHost(opts: { deno?: string; tmp?: string } = {}): IsolateHost {
  const deno = opts.deno ?? denoBinary();
  const script = stdioGuestScript(DENO_STDIO);
  return {
    tier: "deno-subprocess",
    isolation: "isolate",
    start: (limits: IsolateLimits) =>
      new Promise<IsolateChannel>((resolve, reject) => {
        const box = mkdtempSync(join(opts.tmp ?? tmpdir(), "deft-deno-"));
        writeFileSync(join(box, DENO_GUEST_FILE), script);
        const child = spawn(deno, denoGuestArgs(box, limits), { cwd: box, env: denoGuestEnv(box), stdio: ["pipe", "pipe", "pipe"] });
        let handler: ((m: GuestMessage) => void) | undefined;
        let ready = false;
        let stderr = "";
        const stray: string[] = [];
        const exited = new Promise<IsolateExit>((res) => {
          child.once("close", (code, signal) => {
            rmSync(box, { recursive: true, force: true });
            if (killed) return res({ reason: "killed" });
            if (isOomExit(code, signal, stderr)) return res({ reason: "out-of-memory" });
            const detail = (stderr.trim() || stray.join("\n")).slice(-500) || `exit ${code ?? signal}`;
            res({ reason: code === 0 ? "exited" : "crashed", detail });
          });
        });
        let killed = false;
        const decoder = new LineDecoder(
          (msg) => {
            if (msg.t === "ready" && !ready) {
              ready = true;
              return resolve(channel);
            }
            handler?.(msg);
          },
          // Text the snippet wrote to stdout itself: reported as console output.
          (text) => handler?.({ t: "log", level: "log", text }),
        );
        child.stdout.on("data", (b: Buffer) => decoder.push(b));
        child.stderr.on("data", (b: Buffer) => {
          stderr = (stderr + b.toString("utf8")).slice(-STDERR_KEEP);
        });
        child.stdin.on("error", () => {}); // EPIPE once the guest is gone
        child.once("error", (e) => reject(new Error(`cannot start ${deno}: ${e.message}`)));
        exited.then((exit) => {
          if (!ready) reject(new Error(`deno exited before it was ready (${exit.reason}${exit.detail ? `: ${exit.detail}` : ""})`));
        });
        const channel: IsolateChannel = {
          send: (msg) => {
            if (!child.stdin.destroyed) child.stdin.write(JSON.stringify(msg) + "\n");
          },
          onMessage: (h) => {
            handler = h;
          },
          exited,
          kill: () => {
            if (child.exitCode !== null || child.signalCode !== null) return;
            killed = true;
            child.kill("SIGKILL");
          },
        };
      }),
  };
}
