// The Bun isolate tiers (this module runs under Bun; it uses node:* and Web APIs only, which Bun
// implements, so it also type-checks without Bun's types):
//
//   bun-worker  a `new Worker()` per isolate in the host's own process. Bun has no permission
//               system and ignores `resourceLimits`: the guest can read files, read env, spawn,
//               open sockets and exhaust the host's memory. TRUSTED code only.
//   bun-bwrap   one `bun` subprocess per isolate inside bubblewrap (all namespaces unshared, no
//               capabilities, no host env, only the bun binary and its libraries visible, a
//               private /tmp) and per-isolate cgroup v1 memory and pids limits. Untrusted code.
//
// bunIsolateHost("auto") picks bwrap when it works here, else the worker with a loud warning.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { guestMainSource } from "../../isolates/guest.ts";
import { launchingHost, type RunMessage, type GuestMessage, type HostMessage, type IsolateChannel, type IsolateExit, type IsolateHost, type IsolateLimits, type Launched } from "../../isolates/protocol.ts";
import { stdioGuestScript } from "../../isolates/stdio-guest.ts";
import { stdioChannel } from "../node/stdio-channel.ts";
import { BUN_PRAGMA, BUN_STDIO } from "./guest-io.ts";

/** The bun binary: DEFT_BUN, else this process's when it is Bun, else the npm package's, else `bun`. */
export function bunBinary(env: Record<string, string | undefined> = process.env): string {
  if (env["DEFT_BUN"]) return env["DEFT_BUN"];
  if (process.versions["bun"]) return process.execPath;
  try {
    const bin = join(dirname(createRequire(import.meta.url).resolve("bun/package.json")), "bin", "bun.exe");
    if (existsSync(bin)) return bin;
  } catch {}
  return "bun";
}

// ---------------------------------------------------------------------------------------------
// bun-worker

/**
 * The worker's script: the prelude over postMessage. With `run` (a cold start), the run is part
 * of the script and starts as soon as the prelude is loaded, without waiting for a message.
 */
export function bunWorkerScript(run?: RunMessage): string {
  return `${BUN_PRAGMA}
"use strict";
let __deftHandler;
const __deftTransport = {
  send(msg) { ${run ? 'if (msg.t === "ready") return; ' : ""}self.postMessage(msg); },
  onMessage(handler) { __deftHandler = handler; self.onmessage = (e) => handler(e.data); },
};
(${guestMainSource()})(__deftTransport);
${run ? `__deftHandler(${JSON.stringify(run)});` : ""}
`;
}

/** A Worker per isolate, in this process. For trusted code only: see the top of this file. */
export function bunWorkerHost(): IsolateHost {
  const blob = new Blob([bunWorkerScript()], { type: "application/javascript" });
  /** One Worker; the channel takes messages at once (a Worker queues them until it runs). */
  const launch = (_limits: IsolateLimits, run?: RunMessage): Launched => {
    // A blob URL per isolate, revoked once it is loaded: pools sharing this host may close it.
    // A cold start gets a script of its own with the run inside.
    const url = URL.createObjectURL(run ? new Blob([bunWorkerScript(run)], { type: "application/javascript" }) : blob);
    const worker = new Worker(url);
    let handler: ((m: GuestMessage) => void) | undefined;
    let isReady = false;
    let done = false;
    let markReady!: () => void;
    let notReady!: (e: Error) => void;
    const ready = new Promise<void>((res, rej) => ((markReady = res), (notReady = rej)));
    ready.catch(() => {});
    let settle!: (e: IsolateExit) => void;
    const exited = new Promise<IsolateExit>((res) => (settle = res));
    const finish = (e: IsolateExit): void => {
      if (done) return;
      done = true;
      URL.revokeObjectURL(url);
      settle(e);
      if (!isReady) notReady(new Error(`the bun worker stopped before it was ready (${e.reason}${e.detail ? `: ${e.detail}` : ""})`));
    };
    worker.onmessage = (ev: MessageEvent) => {
      const msg = ev.data as GuestMessage;
      if (msg?.t === "ready") {
        if (!isReady) {
          isReady = true;
          URL.revokeObjectURL(url);
          markReady();
        }
        return;
      }
      handler?.(msg);
    };
    worker.onerror = (ev: ErrorEvent) => {
      ev.preventDefault?.();
      finish({ reason: "crashed", detail: ev.message || "worker error" });
      worker.terminate();
    };
    // Bun emits "close" when a worker ends (terminate() or its event loop draining).
    worker.addEventListener("close", () => finish({ reason: "exited" }));
    let embedded = !!run; // the run is in the script: the one IsolateSandbox sends is not needed
    const channel: IsolateChannel = {
      send: (msg: HostMessage) => {
        if (embedded && msg.t === "run") return void (embedded = false);
        if (!done) worker.postMessage(msg);
      },
      onMessage: (h) => {
        handler = h;
      },
      exited,
      kill: () => {
        if (done) return;
        finish({ reason: "killed" });
        worker.terminate();
      },
    };
    return { channel, ready };
  };
  return launchingHost({ tier: "bun-worker", isolation: "in-process", launch });
}

// ---------------------------------------------------------------------------------------------
// bun-bwrap

export interface BunBwrapOptions {
  /** The bun binary (default bunBinary()). */
  bun?: string;
  /** The bwrap binary (default DEFT_BWRAP or `bwrap`). */
  bwrap?: string;
  /** Where per-isolate box dirs go (default os.tmpdir()). */
  tmp?: string;
  /** cgroup v1 mount point (default /sys/fs/cgroup): its memory/ and pids/ controllers are used. */
  cgroupRoot?: string;
  /**
   * Tasks (cgroup v1 pids counts threads) allowed on top of IsolateLimits.maxProcesses for the
   * isolate itself: bwrap's two processes and bun's own threads (JSC GC, the worker pool).
   */
  taskAllowance?: number;
}

/** The guest script's path inside the sandbox. */
const BOX = "/box";
const GUEST_FILE = "guest.js";
/** Where the bun binary appears inside the sandbox. */
const SANDBOX_BUN = "/bun";
/** Default BunBwrapOptions.taskAllowance. */
export const DEFAULT_TASK_ALLOWANCE = 24;

/** Why the bwrap tier cannot run here, with what to install or enable; undefined if it can. */
export interface BwrapProbe {
  ok: boolean;
  problem?: string;
  /** Milliseconds for the probe's `bun --version` inside bubblewrap. */
  ms?: number;
}

/** The shared libraries the bun binary loads (from ldd), to bind read-only; [] if ldd fails. */
function sharedLibraries(bin: string): string[] {
  const r = spawnSync("ldd", [bin], { encoding: "utf8" });
  if (r.status !== 0 || typeof r.stdout !== "string") return [];
  const libs: string[] = [];
  for (const line of r.stdout.split("\n")) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

/** bwrap's arguments for one isolate (everything after `bwrap`). */
export function bwrapArgs(bun: string, libs: string[], boxDir: string, limits: IsolateLimits): string[] {
  const binds: string[] = [];
  if (libs.length) {
    for (const lib of libs) binds.push("--ro-bind", realpathSync(lib), lib);
  } else {
    // No ldd: the library directories (still no shell: /usr/bin and /bin are not bound).
    for (const d of ["/lib", "/lib64", "/usr/lib", "/usr/lib64"]) if (existsSync(d)) binds.push("--ro-bind", d, d);
  }
  return [
    "--unshare-all", // user, ipc, pid, net (loopback only), uts, cgroup namespaces
    "--cap-drop", "ALL",
    "--die-with-parent",
    "--new-session",
    "--clearenv",
    "--setenv", "HOME", "/tmp",
    "--setenv", "NO_COLOR", "1",
    "--setenv", "BUN_RUNTIME_TRANSPILER_CACHE_PATH", "0",
    "--ro-bind", realpathSync(bun), SANDBOX_BUN,
    ...binds,
    "--proc", "/proc",
    "--dev", "/dev",
    "--tmpfs", "/tmp",
    "--ro-bind", boxDir, BOX,
    "--chdir", "/tmp",
    "--",
    SANDBOX_BUN,
    "run",
    "--no-install",
    "--no-addons",
    ...(limits.memoryMiB <= 256 ? ["--smol"] : []),
    `${BOX}/${GUEST_FILE}`,
  ];
}

interface Cgroups {
  memory: string;
  pids: string;
}

function cgroupProblem(root: string): string | undefined {
  for (const c of ["memory", "pids"]) {
    const dir = join(root, c);
    if (!existsSync(join(dir, "cgroup.procs"))) {
      if (existsSync(join(root, "cgroup.controllers")))
        return `cgroup v1 ${c} controller not found: ${root} is cgroup v2 (unified), which this tier does not drive yet; boot with systemd.unified_cgroup_hierarchy=0 or run on a cgroup v1 host`;
      return `cgroup v1 ${c} controller not mounted at ${dir}; mount it (mount -t cgroup -o ${c} cgroup ${dir}) or run the container with writable cgroups (--cgroupns=host / privileged)`;
    }
    const probe = join(dir, `deft-probe-${process.pid}-${Date.now()}`);
    try {
      mkdirSync(probe);
      rmdirSync(probe);
    } catch (e) {
      return `cannot create a cgroup under ${dir} (${(e as Error).message}); run as root with writable cgroups (docker: --privileged or a delegated cgroup)`;
    }
  }
  return undefined;
}

/** Can this machine run the bwrap tier? Runs `bun --version` inside the same sandbox once. */
export function probeBwrap(opts: BunBwrapOptions = {}): BwrapProbe {
  const bwrap = opts.bwrap ?? process.env["DEFT_BWRAP"] ?? "bwrap";
  const bun = opts.bun ?? bunBinary();
  if (process.platform !== "linux") return { ok: false, problem: `the bun-bwrap tier needs Linux (bubblewrap and cgroups); this is ${process.platform}` };
  const v = spawnSync(bwrap, ["--version"], { encoding: "utf8" });
  if (v.error || v.status !== 0) return { ok: false, problem: `bubblewrap (${bwrap}) not found or not runnable: install it (apt-get install -y bubblewrap / dnf install bubblewrap)` };
  const cg = cgroupProblem(opts.cgroupRoot ?? "/sys/fs/cgroup");
  if (cg) return { ok: false, problem: cg };
  let box: string | undefined;
  try {
    box = mkdtempSync(join(opts.tmp ?? tmpdir(), "deft-bun-probe-"));
    const args = bwrapArgs(bun, sharedLibraries(bun), box, { memoryMiB: 128 });
    const t0 = performance.now();
    const r = spawnSync(bwrap, [...args.slice(0, args.indexOf("--") + 1), SANDBOX_BUN, "--version"], { encoding: "utf8", timeout: 10_000 });
    const ms = performance.now() - t0;
    if (r.status !== 0)
      return {
        ok: false,
        problem: `bubblewrap cannot start bun in a sandbox (${(r.stderr || r.error?.message || `exit ${r.status}`).trim().slice(0, 300)}); it needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) or root, and a kernel with pid/net namespaces`,
      };
    return { ok: true, ms };
  } finally {
    if (box) rmSync(box, { recursive: true, force: true });
  }
}

/** One bun subprocess per isolate inside bubblewrap, in its own memory and pids cgroups. */
export function bunBwrapHost(opts: BunBwrapOptions = {}): IsolateHost {
  const bwrap = opts.bwrap ?? process.env["DEFT_BWRAP"] ?? "bwrap";
  const bun = opts.bun ?? bunBinary();
  const cgRoot = opts.cgroupRoot ?? "/sys/fs/cgroup";
  const allowance = opts.taskAllowance ?? DEFAULT_TASK_ALLOWANCE;
  const script = stdioGuestScript(BUN_STDIO);
  let checked: BwrapProbe | undefined;
  let libs: string[] = [];
  let seq = 0;

  const makeCgroups = (limits: IsolateLimits): Cgroups => {
    const name = `deft-bun-${process.pid}-${++seq}-${Math.random().toString(36).slice(2, 8)}`;
    const cg: Cgroups = { memory: join(cgRoot, "memory", name), pids: join(cgRoot, "pids", name) };
    mkdirSync(cg.memory);
    mkdirSync(cg.pids);
    const bytes = String(limits.memoryMiB * 1024 * 1024);
    writeFileSync(join(cg.memory, "memory.limit_in_bytes"), bytes);
    // With swap, also cap memory+swap (must not be below the memory limit).
    if (existsSync(join(cg.memory, "memory.memsw.limit_in_bytes"))) {
      try {
        writeFileSync(join(cg.memory, "memory.memsw.limit_in_bytes"), bytes);
      } catch {}
    }
    writeFileSync(join(cg.pids, "pids.max"), String((limits.maxProcesses ?? 16) + allowance));
    return cg;
  };
  const procsOf = (cg: Cgroups): number[] => {
    const out = new Set<number>();
    for (const dir of [cg.memory, cg.pids]) {
      try {
        for (const l of readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n")) if (l.trim()) out.add(Number(l));
      } catch {}
    }
    return [...out];
  };
  const killAll = (cg: Cgroups): void => {
    for (const pid of procsOf(cg)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
  };
  const oomKilled = (cg: Cgroups): boolean => {
    try {
      const oc = readFileSync(join(cg.memory, "memory.oom_control"), "utf8");
      const m = /oom_kill (\d+)/.exec(oc);
      if (m) return Number(m[1]) > 0;
      return Number(readFileSync(join(cg.memory, "memory.failcnt"), "utf8")) > 0;
    } catch {
      return false;
    }
  };
  const removeCgroups = async (cg: Cgroups): Promise<void> => {
    for (let i = 0; i < 50; i++) {
      killAll(cg);
      let left = 0;
      for (const dir of [cg.memory, cg.pids]) {
        try {
          if (existsSync(dir)) rmdirSync(dir);
        } catch {
          left++;
        }
      }
      if (!left) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  /** Removals in progress: close() waits for them, so a host that exits leaves no cgroup. */
  const removing = new Set<Promise<void>>();
  const remove = (cg: Cgroups): void => {
    const p = removeCgroups(cg).finally(() => removing.delete(p));
    removing.add(p);
  };
  /**
   * Cgroups a host that died left behind (its pid is in the name): removed when empty. A worker
   * killed with SIGKILL cannot clean up after itself; the next one on the machine does.
   */
  const sweepStale = (): void => {
    for (const c of ["memory", "pids"]) {
      let names: string[] = [];
      try {
        names = readdirSync(join(cgRoot, c)).filter((n) => n.startsWith("deft-bun-"));
      } catch {}
      for (const n of names) {
        const pid = Number(n.split("-")[2]);
        if (!pid || pid === process.pid || pidAlive(pid)) continue;
        try {
          rmdirSync(join(cgRoot, c, n));
        } catch {}
      }
    }
  };

  /** Spawn one guest in its cgroups and sandbox; the channel takes messages at once. */
  const launch = (limits: IsolateLimits): Launched => {
    if (!checked) {
      checked = probeBwrap({ ...opts, bwrap, bun });
      libs = sharedLibraries(bun);
      if (checked.ok) sweepStale();
    }
    if (!checked.ok) throw new Error(`the bun-bwrap tier is unavailable: ${checked.problem}`);
    let cg: Cgroups;
    try {
      cg = makeCgroups(limits);
    } catch (e) {
      throw new Error(`the bun-bwrap tier could not create its cgroups under ${cgRoot}: ${(e as Error).message}`);
    }
    const box = mkdtempSync(join(opts.tmp ?? tmpdir(), "deft-bun-"));
    writeFileSync(join(box, GUEST_FILE), script);
    // The shell joins both cgroups, then becomes bwrap: limited from bwrap's first instruction.
    const join2 = `echo $$ > '${cg.memory}/cgroup.procs' && echo $$ > '${cg.pids}/cgroup.procs' && exec "$0" "$@"`;
    const child = spawn("/bin/sh", ["-c", join2, bwrap, ...bwrapArgs(bun, libs, box, limits)], {
      env: { PATH: "/usr/bin:/bin" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    return stdioChannel(child, {
      name: "bun in bubblewrap",
      isOom: (code, signal) => oomKilled(cg) && (code === 137 || signal === "SIGKILL" || code !== 0),
      cleanup: () => {
        killAll(cg); // anything the guest left behind (already gone when its pid namespace ended)
        remove(cg);
        rmSync(box, { recursive: true, force: true });
      },
      onKill: () => killAll(cg),
    });
  };

  return launchingHost({
    tier: "bun-bwrap",
    isolation: "os-sandbox",
    launch,
    close: async () => {
      while (removing.size) await Promise.allSettled([...removing]);
    },
  });
}

// ---------------------------------------------------------------------------------------------

export type BunIsolateMode = "auto" | "worker" | "bwrap";

/** Probe results by options: the machine does not change while we run. */
const autoProbes = new Map<string, BwrapProbe>();

/**
 * The Bun isolate host for a mode. "auto" (the default) is bwrap when it works on this machine
 * (probed once), else the worker, with a loud warning on stderr: the worker stops nothing.
 */
export function bunIsolateHost(mode: BunIsolateMode = "auto", opts: BunBwrapOptions = {}): IsolateHost {
  if (mode === "worker") return bunWorkerHost();
  if (mode === "bwrap") return bunBwrapHost(opts);
  const key = JSON.stringify([opts.bwrap, opts.bun, opts.cgroupRoot]);
  const autoProbe = autoProbes.get(key) ?? probeBwrap(opts);
  autoProbes.set(key, autoProbe);
  if (autoProbe.ok) return bunBwrapHost(opts);
  process.stderr.write(
    `\n*** deft: WARNING: the bun-bwrap isolate tier is unavailable: ${autoProbe.problem}.\n` +
      `*** deft: falling back to the bun-worker tier, which runs snippets IN THIS PROCESS with full access\n` +
      `*** deft: to its files, env, network and processes. Use it for TRUSTED code only.\n\n`,
  );
  return bunWorkerHost();
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
