// The Deno subprocess isolate tier, hosted from Node (or Bun): one `deno run` per isolate with no
// permissions beyond its own temp dir, carrying the protocol over stdin/stdout. The Deno shim
// (runtimes/deno/isolates.ts) does the same with Deno.Command.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { DENO_GUEST_FILE, denoGuestArgs, denoGuestEnv, isOomExit } from "../../isolates/deno-guest.ts";
import { launchingHost, type IsolateHost, type IsolateLimits, type Launched } from "../../isolates/protocol.ts";
import { stdioGuestScript } from "../../isolates/stdio-guest.ts";
import { DENO_STDIO } from "../deno/guest-io.ts";
import { stdioChannel } from "./stdio-channel.ts";

/** The deno binary: DEFT_DENO, else the npm package's (a dev dependency), else `deno` on PATH. */
export function denoBinary(env: Record<string, string | undefined> = process.env): string {
  if (env["DEFT_DENO"]) return env["DEFT_DENO"];
  try {
    const bin = join(dirname(createRequire(import.meta.url).resolve("deno/package.json")), "deno");
    if (existsSync(bin)) return bin;
  } catch {}
  return "deno";
}

export function denoSubprocessHost(opts: { deno?: string; tmp?: string } = {}): IsolateHost {
  const deno = opts.deno ?? denoBinary();
  let shared: string | undefined;
  const sharedDir = (): string => {
    if (!shared) {
      shared = mkdtempSync(join(opts.tmp ?? tmpdir(), "deft-deno-shared-"));
      writeFileSync(join(shared, DENO_GUEST_FILE), stdioGuestScript(DENO_STDIO));
    }
    return shared;
  };

  /** Spawn one guest; the channel takes messages at once (stdin buffers them). */
  const launch = (limits: IsolateLimits): Launched => {
    const dir = sharedDir();
    const box = mkdtempSync(join(opts.tmp ?? tmpdir(), "deft-deno-"));
    const child = spawn(deno, denoGuestArgs(dir, box, limits), { cwd: box, env: denoGuestEnv(dir, box), stdio: ["pipe", "pipe", "pipe"] });
    return stdioChannel(child, { name: "deno", isOom: isOomExit, cleanup: () => rmSync(box, { recursive: true, force: true }) });
  };

  return launchingHost({
    tier: "deno-subprocess",
    isolation: "isolate",
    launch,
    close: async () => {
      // Deno may still be writing its cache as the last guests die: retry, and never fail a close.
      if (shared) {
        try {
          rmSync(shared, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
        } catch {}
      }
      shared = undefined;
    },
  });
}
