// The Deno subprocess isolate tier, hosted from Deno: the same guest, flags and protocol as the
// Node-hosted one (runtimes/node/deno-isolates.ts), spawned with Deno.Command.
import { DENO_GUEST_FILE, denoGuestArgs, denoGuestEnv, isOomExit } from "../../isolates/deno-guest.ts";
import { launchingHost, type GuestMessage, type IsolateChannel, type IsolateExit, type IsolateHost, type IsolateLimits, type Launched } from "../../isolates/protocol.ts";
import { LineDecoder, stdioGuestScript } from "../../isolates/stdio-guest.ts";
import { DENO_STDIO } from "./guest-io.ts";

const STDERR_KEEP = 4096;

export function denoSubprocessHost(opts: { deno?: string } = {}): IsolateHost {
  const deno = opts.deno ?? Deno.execPath();
  let shared: string | undefined;
  const sharedDir = (): string => {
    if (!shared) {
      shared = Deno.makeTempDirSync({ prefix: "deft-deno-shared-" });
      Deno.writeTextFileSync(`${shared}/${DENO_GUEST_FILE}`, stdioGuestScript(DENO_STDIO));
    }
    return shared;
  };

  /** Spawn one guest; the channel takes messages at once (the pipe buffers them). */
  const launch = (limits: IsolateLimits): Launched => {
    const dir = sharedDir();
    const box = Deno.makeTempDirSync({ prefix: "deft-deno-" });
    const child = new Deno.Command(deno, { args: denoGuestArgs(dir, box, limits), cwd: box, env: denoGuestEnv(dir, box), clearEnv: true, stdin: "piped", stdout: "piped", stderr: "piped" }).spawn();
    const stdin = child.stdin.getWriter();
    const enc = new TextEncoder();
    let handler: ((m: GuestMessage) => void) | undefined;
    let killed = false;
    let stderr = "";
    let markReady!: () => void;
    const readySignal = new Promise<void>((r) => (markReady = r));
    const decoder = new LineDecoder(
      (msg) => (msg.t === "ready" ? markReady() : handler?.(msg)),
      (text) => handler?.({ t: "log", level: "log", text }),
    );
    void (async () => {
      for await (const chunk of child.stdout) decoder.push(chunk);
    })().catch(() => {});
    void (async () => {
      const dec = new TextDecoder();
      for await (const chunk of child.stderr) stderr = (stderr + dec.decode(chunk)).slice(-STDERR_KEEP);
    })().catch(() => {});
    const exited: Promise<IsolateExit> = child.status.then(async (s) => {
      await Deno.remove(box, { recursive: true }).catch(() => {});
      if (killed) return { reason: "killed" };
      if (isOomExit(s.code, s.signal, stderr)) return { reason: "out-of-memory" };
      return { reason: s.success ? "exited" : "crashed", detail: stderr.trim().slice(-500) || `exit ${s.code}` };
    });
    const ready = Promise.race([
      readySignal,
      exited.then((e) => {
        throw new Error(`deno exited before it was ready (${e.reason}${e.detail ? `: ${e.detail}` : ""})`);
      }),
    ]);
    ready.catch(() => {});
    const channel: IsolateChannel = {
      send: (msg) => void stdin.write(enc.encode(JSON.stringify(msg) + "\n")).catch(() => {}),
      onMessage: (h) => {
        handler = h;
      },
      exited,
      kill: () => {
        if (killed) return;
        killed = true;
        try {
          child.kill("SIGKILL");
        } catch {
          // already gone
        }
      },
    };
    return { channel, ready };
  };

  return launchingHost({
    tier: "deno-subprocess",
    isolation: "isolate",
    launch,
    close: async () => {
      if (shared) await Deno.remove(shared, { recursive: true }).catch(() => {});
      shared = undefined;
    },
  });
}
