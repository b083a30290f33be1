// One isolate that is a child process speaking the line-delimited protocol on stdin/stdout
// (isolates/stdio-guest.ts): the channel, readiness and exit classification shared by the
// process tiers hosted with node:child_process (Deno subprocess; bun in bubblewrap). The channel
// takes messages at once: the pipe buffers them until the guest reads.
import type { ChildProcess } from "node:child_process";
import type { GuestMessage, IsolateChannel, IsolateExit, Launched } from "../../isolates/protocol.ts";
import { LineDecoder } from "../../isolates/stdio-guest.ts";

/** stderr (and stray stdout before the run) kept per isolate, to explain a crash. */
const STDERR_KEEP = 4096;

export function stdioChannel(
  child: ChildProcess,
  opts: {
    /** What to call the isolate in errors, e.g. "deno", "bun in bubblewrap". */
    name: string;
    /** Runs once the process is gone, before `exited` settles (remove temp dirs, cgroups). */
    cleanup(): void;
    /** An exit that is not ours: out of memory? (exit code, signal, the tail of stderr) */
    isOom(code: number | null, signal: NodeJS.Signals | null, stderr: string): boolean;
    /** Runs on kill() after the SIGKILL (e.g. kill what the guest left in its cgroup). */
    onKill?(): void;
  },
): Launched {
  let handler: ((m: GuestMessage) => void) | undefined;
  let killed = false;
  let stderr = "";
  let spawnError: Error | undefined;
  const stray: string[] = [];
  let markReady!: () => void;
  const readySignal = new Promise<void>((r) => (markReady = r));

  const exited = new Promise<IsolateExit>((res) => {
    child.once("close", (code, signal) => {
      const oom = !killed && !spawnError && opts.isOom(code, signal, stderr);
      opts.cleanup();
      if (killed) return res({ reason: "killed" });
      if (spawnError) return res({ reason: "crashed", detail: `cannot start ${opts.name}: ${spawnError.message}` });
      if (oom) return res({ reason: "out-of-memory" });
      const detail = (stderr.trim() || stray.join("\n")).slice(-500) || `exit ${code ?? signal}`;
      res({ reason: code === 0 ? "exited" : "crashed", detail });
    });
  });
  const decoder = new LineDecoder(
    (msg) => (msg.t === "ready" ? markReady() : handler?.(msg)),
    // Text the snippet wrote to stdout itself: console output once there is a run.
    (text) => (handler ? handler({ t: "log", level: "log", text }) : stray.push(text.slice(0, 500))),
  );
  child.stdout!.on("data", (b: Uint8Array) => decoder.push(b));
  child.stderr!.on("data", (b: Uint8Array) => {
    stderr = (stderr + new TextDecoder().decode(b)).slice(-STDERR_KEEP);
  });
  child.stdin!.on("error", () => {}); // EPIPE once the guest is gone
  child.once("error", (e) => (spawnError = e));

  const ready = Promise.race([
    readySignal,
    exited.then((exit) => {
      throw new Error(`${opts.name} exited before it was ready (${exit.reason}${exit.detail ? `: ${exit.detail}` : ""})`);
    }),
  ]);
  ready.catch(() => {});
  const channel: IsolateChannel = {
    send: (msg) => {
      if (!child.stdin!.destroyed) child.stdin!.write(JSON.stringify(msg) + "\n");
    },
    onMessage: (h) => {
      handler = h;
    },
    exited,
    kill: () => {
      if (killed || child.exitCode !== null || child.signalCode !== null) return;
      killed = true;
      child.kill("SIGKILL");
      opts.onKill?.();
    },
  };
  return { channel, ready };
}
