// The workers-loader isolate tier, hosted from Node: one workerd process (through Miniflare)
// per host, shared by its isolates; each run is a fresh dynamic worker loaded through the Worker
// Loader binding by the parent worker (parent-worker.ts), with no network of its own. The guest
// talks to this host through the HOST service binding (a Node function here), see
// isolates/workers-guest.ts for its side.
//
// workerd runs every isolate on one thread and enforces no CPU or memory limit of its own when
// run locally, so:
//   - kill() of a run that has not finished aborts its request and pings the parent; if workerd
//     does not answer (a CPU-bound guest), the process is disposed and started again on the next
//     run. Other runs in flight in that process end as "crashed".
//   - a guest that exhausts memory aborts the whole process (V8's heap limit, ~1.4 GB); the run
//     ends as "out-of-memory" (seen on workerd's stderr), and the next run starts a new process.
import type { Readable } from "node:stream";
import { Miniflare } from "miniflare";
import type { GuestMessage, HostMessage, IsolateChannel, IsolateExit, IsolateHost, WireRequest, WireResponse } from "../../isolates/protocol.ts";
import { fromBase64, toBase64 } from "../../isolates/protocol.ts";
import { WORKERS_GUEST_MAIN, WORKERS_TOKEN_HEADER, workersGuestModules, type WorkersFinalBatch } from "../../isolates/workers-guest.ts";
import { PARENT_WORKER_SCRIPT } from "./parent-worker.ts";

export interface WorkersLoaderHostOptions {
  /** The dynamic workers' compatibility date (default 2025-09-01). */
  compatibilityDate?: string;
  /** Console bytes after which the guest's console throws (default 1 MiB; see workers-guest.ts). */
  guestLogCapBytes?: number;
  /** How long the parent may take to answer a ping after a kill before workerd is restarted. */
  pingTimeoutMs?: number;
}

/** What the host has seen, for tests and benchmarks. */
export interface WorkersLoaderStats {
  /** workerd processes started, and the time each took to be ready (ms). */
  starts: number[];
  /** Restarts forced by a CPU-bound guest (dispose + the next start), dispose times (ms). */
  restarts: number[];
  crashes: number;
}

export type WorkersLoaderHost = IsolateHost & { readonly stats: WorkersLoaderStats };

const STDERR_KEEP = 4096;
const PARENT = "http://parent";

interface Generation {
  mf: Miniflare;
  ready: Promise<void>;
  stderr: string;
  oom: boolean;
  /** Why this process was stopped by the host, if it was. */
  stoppedBecause?: string;
  /** Settles when workerd's stderr closes (the process is gone). */
  gone: Promise<void>;
}

type Reply = HostMessage & { t: "reply" };
interface Slot {
  p: Promise<Reply>;
  resolve: (m: Reply) => void;
}

interface Run {
  token: string;
  handler?: (m: GuestMessage) => void;
  /** Replies awaited by guest requests, by call id (made by whichever side comes first). */
  slots: Map<number, Slot>;
  /** Batches that arrived ahead of their turn, by sequence number. */
  batches: Map<number, GuestMessage[]>;
  /** Requests waiting for their batch to be delivered (its turn may come later), by sequence. */
  delivered: Map<number, () => void>;
  nextSeq: number;
  nextOutboundId: number;
  started: boolean;
  sawDone: boolean;
  finished: boolean;
  killed: boolean;
  abort: AbortController;
  gen?: Generation;
  exit: (e: IsolateExit) => void;
}

export function workersLoaderHost(opts: WorkersLoaderHostOptions = {}): WorkersLoaderHost {
  const compatibilityDate = opts.compatibilityDate ?? "2025-09-01";
  const logCap = opts.guestLogCapBytes ?? 1024 * 1024;
  const pingTimeout = opts.pingTimeoutMs ?? 1_500;
  const stats: WorkersLoaderStats = { starts: [], restarts: [], crashes: 0 };
  const runs = new Map<string, Run>();
  let current: Generation | undefined;
  /** A pending liveness check (after a kill); new runs wait for it. */
  let checking: Promise<void> | undefined;
  let closed = false;

  const startGeneration = (): Generation => {
    const t0 = performance.now();
    let closeStderr!: () => void;
    const gone = new Promise<void>((r) => (closeStderr = r));
    const gen: Generation = { stderr: "", oom: false, gone } as Generation;
    gen.mf = new Miniflare({
      modules: [{ type: "ESModule", path: "parent.mjs", contents: PARENT_WORKER_SCRIPT }],
      compatibilityDate,
      compatibilityFlags: ["enable_ctx_exports"],
      workerLoaders: { LOADER: {} },
      serviceBindings: { HOST: (req: Request) => hostBinding(req) },
      handleRuntimeStdio(stdout: Readable, stderr: Readable) {
        stdout.resume(); // the guest's own console (globalThis.console): not the snippet's output
        stderr.on("data", (b: Buffer) => {
          gen.stderr = (gen.stderr + b.toString("utf8")).slice(-STDERR_KEEP);
          if (/heap out of memory|Reached heap limit/.test(gen.stderr)) gen.oom = true;
        });
        stderr.once("close", closeStderr);
        stderr.once("end", closeStderr);
      },
    });
    gen.ready = gen.mf.ready.then(() => void stats.starts.push(performance.now() - t0));
    gen.ready.catch(() => {});
    return gen;
  };

  /** The live workerd, started if needed (after any pending liveness check). */
  const live = async (): Promise<Generation> => {
    while (checking) await checking;
    if (closed) throw new Error("the workers-loader host is closed");
    current ??= startGeneration();
    const gen = current;
    await gen.ready;
    return gen;
  };

  /** Stop a process: every run still in it ends, with `why`. */
  const retire = async (gen: Generation, why: string): Promise<void> => {
    if (current === gen) current = undefined;
    gen.stoppedBecause ??= why;
    const t0 = performance.now();
    await gen.mf.dispose().catch(() => {});
    if (why.startsWith("restart")) stats.restarts.push(performance.now() - t0);
  };

  const ping = async (gen: Generation): Promise<boolean> => {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), pingTimeout);
    try {
      const r = await gen.mf.dispatchFetch(`${PARENT}/ping`, { signal: ac.signal });
      await r.text();
      return r.ok;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  };

  const deliver = (run: Run, msg: GuestMessage): void => {
    if (run.killed || run.finished) return;
    if (msg.t === "ready") return; // implicit: a run's worker is loaded when it runs
    if (msg.t === "done") run.sawDone = true;
    run.handler?.(msg);
  };

  const slot = (run: Run, id: number): Slot => {
    let sl = run.slots.get(id);
    if (!sl) {
      let resolve!: (m: Reply) => void;
      const p = new Promise<Reply>((r) => (resolve = r));
      sl = { p, resolve };
      run.slots.set(id, sl);
    }
    return sl;
  };

  /**
   * Deliver a batch of guest messages in sequence order (batches can arrive out of order: the
   * guest's requests to HOST, and its last batch in the answer to the run); resolves once it has
   * been delivered, with the replies to its calls.
   */
  const acceptBatch = async (run: Run, seq: number, msgs: GuestMessage[]): Promise<Reply[]> => {
    const turn = seq < run.nextSeq ? Promise.resolve() : new Promise<void>((r) => run.delivered.set(seq, r));
    // Take this batch's reply slots now: a reply can come back before `turn` settles.
    const waits = msgs.filter((m) => m.t === "call").map((m) => slot(run, m.id).p);
    run.batches.set(seq, msgs);
    while (run.batches.has(run.nextSeq)) {
      const n = run.nextSeq++;
      const batch = run.batches.get(n)!;
      run.batches.delete(n);
      for (const m of batch) {
        if (m.t === "call") slot(run, m.id);
        deliver(run, m);
      }
      run.delivered.get(n)?.();
      run.delivered.delete(n);
    }
    await turn;
    return Promise.all(waits);
  };

  const hostBinding = async (req: Request): Promise<Response> => {
    const run = runs.get(req.headers.get(WORKERS_TOKEN_HEADER) ?? "");
    if (!run || run.killed) return new Response("gone", { status: 410 });
    const path = new URL(req.url).pathname;
    if (path === "/msg") {
      const { seq, msgs } = (await req.json()) as { seq: number; msgs: GuestMessage[] };
      return Response.json(await acceptBatch(run, seq, msgs));
    }
    if (path === "/outbound") {
      // The guest's own fetch(): answered like its `fetch` call, by the session's outbound handler.
      const body = new Uint8Array(await req.arrayBuffer());
      const wire: WireRequest = {
        url: req.headers.get("x-deft-url") ?? "",
        method: req.headers.get("x-deft-method") ?? "GET",
        headers: JSON.parse(req.headers.get("x-deft-headers") ?? "[]") as Array<[string, string]>,
        ...(body.byteLength ? { body: toBase64(body) } : {}),
      };
      const id = run.nextOutboundId--;
      const sl = slot(run, id);
      deliver(run, { t: "call", id, fn: "fetch", args: [wire] });
      const reply = await sl.p;
      if (!reply.ok) return new Response(`deft: outbound: ${reply.error}`, { status: 502 });
      const w = reply.value as WireResponse;
      const headers = w.headers.filter(([k]) => !/^(content-length|content-encoding|transfer-encoding)$/i.test(k));
      const nullBody = w.status === 204 || w.status === 205 || w.status === 304 || wire.method === "HEAD";
      return new Response(nullBody ? null : fromBase64(w.body), { status: w.status, statusText: w.statusText, headers });
    }
    return new Response("not found", { status: 404 });
  };

  const execute = async (run: Run, code: string): Promise<void> => {
    let gen: Generation;
    try {
      gen = await live();
    } catch (e) {
      return run.exit({ reason: "crashed", detail: `workerd did not start: ${(e as Error).message}` });
    }
    run.gen = gen;
    if (run.killed) return;
    const body = JSON.stringify({ token: run.token, id: run.token, compatibilityDate, mainModule: WORKERS_GUEST_MAIN, modules: workersGuestModules(code, { logCapBytes: logCap }) });
    try {
      const res = await gen.mf.dispatchFetch(`${PARENT}/run`, { method: "POST", body, signal: run.abort.signal });
      const r = (await res.json()) as { ok: boolean; error?: { name: string; message: string }; detail?: string };
      // The guest's answer (passed on by the parent as `detail`): its last batch, `done` in it.
      let problems = "";
      if (r.ok && r.detail) {
        const last = JSON.parse(r.detail) as WorkersFinalBatch;
        problems = last.problems.join("; ").slice(0, 500);
        await acceptBatch(run, last.seq, last.msgs as GuestMessage[]);
      }
      if (!r.ok && !run.sawDone) deliver(run, { t: "done", ok: false, error: r.error ?? { name: "Error", message: "the worker failed" } });
      run.exit({ reason: "exited", ...(problems ? { detail: `guest transport: ${problems}` } : {}) });
    } catch (e) {
      if (run.killed) return;
      // The process went away under this run: wait for its stderr to close to tell why.
      await Promise.race([gen.gone, new Promise((r) => setTimeout(r, 1_000))]);
      if (gen.stoppedBecause) return run.exit({ reason: "crashed", detail: gen.stoppedBecause });
      stats.crashes++;
      const oom = gen.oom;
      void retire(gen, oom ? "workerd ran out of memory" : "workerd crashed");
      if (oom) return run.exit({ reason: "out-of-memory", detail: "workerd's V8 heap limit (the whole process aborted)" });
      run.exit({ reason: "crashed", detail: (gen.stderr.trim() || (e as Error).message).slice(-500) });
    }
  };

  return {
    tier: "workers-loader",
    isolation: "isolate",
    stats,
    async start(): Promise<IsolateChannel> {
      await live(); // pre-warm the process: a pool's isolates are ready when it is
      let exit!: (e: IsolateExit) => void;
      const exited = new Promise<IsolateExit>((r) => (exit = r));
      const run: Run = {
        token: crypto.randomUUID(),
        slots: new Map(),
        delivered: new Map(),
        batches: new Map(),
        nextSeq: 0,
        nextOutboundId: -1,
        started: false,
        sawDone: false,
        finished: false,
        killed: false,
        abort: new AbortController(),
        exit: (e) => {
          if (run.finished) return;
          run.finished = true;
          runs.delete(run.token);
          exit(e);
        },
      };
      runs.set(run.token, run);
      return {
        send(msg: HostMessage): void {
          if (run.finished || run.killed) return;
          if (msg.t === "run") {
            if (run.started) return;
            run.started = true;
            void execute(run, msg.code);
            return;
          }
          if (msg.t !== "reply") return;
          const sl = run.slots.get(msg.id);
          if (sl) {
            run.slots.delete(msg.id);
            sl.resolve(msg);
          }
        },
        onMessage(h) {
          run.handler = h;
        },
        exited,
        kill(): void {
          if (run.killed || run.finished) {
            run.killed = true;
            return;
          }
          run.killed = true;
          const inFlight = run.started && !run.sawDone;
          run.abort.abort();
          // Guest requests waiting on a reply get "gone" (the guest may be awaiting them).
          for (const [id, sl] of run.slots) sl.resolve({ t: "reply", id, ok: false, error: "the isolate was stopped" });
          run.slots.clear();
          run.exit({ reason: "killed" });
          const gen = run.gen;
          if (!inFlight || !gen || gen !== current) return;
          // The guest may be CPU-bound, and then every isolate in the process is stuck: check.
          const check = (async () => {
            if (!(await ping(gen))) await retire(gen, "restarted: a CPU-bound isolate was stopped");
          })();
          checking = check;
          void check.finally(() => {
            if (checking === check) checking = undefined;
          });
        },
      };
    },
    async close(): Promise<void> {
      closed = true;
      for (const run of [...runs.values()]) run.exit({ reason: "killed" });
      const gen = current;
      current = undefined;
      if (gen) await retire(gen, "the host was closed");
    },
  };
}
