/**
 * The isolate tier's Sandbox: the host side of the protocol, the same for every runtime. A snippet
 * runs in an isolate taken from a warm pool (started ahead of need, used once, then killed), its
 * calls are answered from the session's workspace, tools and outbound handler, and its limits
 * are enforced here: wall time, output bytes; memory is the shim's (a V8 heap or cgroup limit).
 */
import {
  type ExecuteRequest,
  type ExecuteResult,
  type GuestBindings,
  type Sandbox,
  type WorkspaceFs,
  type WorkspaceSnapshot,
  denyAllOutbound,
  WorkspaceFsError,
} from "../core/sandbox/sandbox.ts";
import { snapshotWorkspace, restoreWorkspace } from "../core/sandbox/snapshot.ts";
import { type GuestMessage, type HostMessage, type IsolateChannel, type RunMessage, type IsolateHost, type IsolateLimits, type WireRequest, DEFAULT_ISOLATE_LIMITS, fromBase64, toBase64 } from "./protocol.ts";
import { transpileSnippet } from "./transpile.ts";

/** Console output and result text kept per execute (then the snippet is stopped). */
export const DEFAULT_OUTPUT_LIMIT = 100 * 1024;
/** Bytes of a response body the outbound handler may hand back to a guest. */
export const MAX_FETCH_RESPONSE_BYTES = 10 * 1024 * 1024;

/**
 * Isolates started ahead of need for one host. Each is used by exactly one execute and then
 * killed; none carries anything from one session (or one call) to the next.
 */
export class IsolatePool {
  readonly #ready: Array<Promise<IsolateChannel>> = [];
  #closed = false;
  constructor(
    readonly host: IsolateHost,
    readonly size = 2,
    readonly limits: IsolateLimits = DEFAULT_ISOLATE_LIMITS,
  ) {}

  /** Start isolates until `size` are ready or starting. */
  fill(): void {
    while (!this.#closed && this.#ready.length < this.size) {
      const p = this.host.start(this.limits);
      p.catch(() => {}); // a failed start surfaces at take()
      this.#ready.push(p);
    }
  }

  /** Resolves once every isolate the pool has started is ready (or failed). */
  async ready(): Promise<void> {
    this.fill();
    await Promise.allSettled(this.#ready);
  }

  /**
   * A fresh isolate: from the pool if one is waiting, else started now. The pool refills when
   * the caller is done with it (`fill()` after the run), not here: starting a process competes
   * for the CPU with the snippet that is about to run.
   */
  async take(run?: RunMessage): Promise<IsolateChannel> {
    const warm = this.#ready.shift();
    if (warm) return warm;
    return this.host.startNow ? this.host.startNow(this.limits, run) : this.host.start(this.limits);
  }

  async close(): Promise<void> {
    this.#closed = true;
    const all = this.#ready.splice(0);
    // Wait for the unused isolates to be gone, so the host's cleanup (temp dirs, cgroups) is done
    // when close() returns.
    await Promise.allSettled(
      all.map((p) =>
        p.then((c) => {
          c.kill();
          return c.exited;
        }),
      ),
    );
    await this.host.close?.();
  }
}

export interface IsolateSandboxOptions {
  sessionId: string;
  pool: IsolatePool;
  fs: WorkspaceFs;
  /** Console output plus the result's JSON, in bytes (default 100 KiB). */
  outputLimitBytes?: number;
  /** Outbound handler for the guest's fetch when a call passes none (default: deny all). */
  outbound?: GuestBindings["outbound"];
}

export class IsolateSandbox implements Sandbox {
  readonly sessionId: string;
  readonly tier: string;
  readonly isolation;
  readonly fs: WorkspaceFs;
  readonly #pool: IsolatePool;
  readonly #outputLimit: number;
  readonly #outbound: NonNullable<GuestBindings["outbound"]>;

  constructor(o: IsolateSandboxOptions) {
    this.sessionId = o.sessionId;
    this.tier = o.pool.host.tier;
    this.isolation = o.pool.host.isolation;
    this.fs = o.fs;
    this.#pool = o.pool;
    this.#outputLimit = o.outputLimitBytes ?? DEFAULT_OUTPUT_LIMIT;
    this.#outbound = o.outbound ?? denyAllOutbound;
  }

  async execute(req: ExecuteRequest, opts: { signal?: AbortSignal; bindings?: GuestBindings } = {}): Promise<ExecuteResult> {
    const t0 = performance.now();
    const logs: string[] = [];
    let outBytes = 0;
    let truncated = false;
    const finish = (r: Omit<ExecuteResult, "logs" | "truncated" | "durationMs">): ExecuteResult => ({ ...r, logs, truncated, durationMs: performance.now() - t0 });

    let code: string;
    try {
      code = req.language === "ts" ? transpileSnippet(req.code) : req.code;
    } catch (e) {
      return finish({ ok: false, error: { kind: "error", message: `execute: TypeScript: ${(e as Error).message}` } });
    }
    if (opts.signal?.aborted) return finish({ ok: false, error: { kind: "cancelled", message: "execute: cancelled before it started" } });

    let ch: IsolateChannel;
    try {
      ch = await this.#pool.take({ t: "run", code });
    } catch (e) {
      return finish({ ok: false, error: { kind: "crashed", message: `execute: could not start a ${this.tier} isolate: ${(e as Error).message}` } });
    }
    const outbound = opts.bindings?.outbound ?? this.#outbound;
    const tools = opts.bindings?.tools ?? {};

    return new Promise<ExecuteResult>((resolve) => {
      let settled = false;
      const settle = (r: ExecuteResult, guestFinished = false): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        // Used once: timers, globals and anything left running die with it, and from here on
        // none of its messages is answered. A guest that is still running (timeout, output,
        // cancel) is killed before the caller hears of it, so its next call cannot land on a
        // stuck runtime; one that finished is killed, and the pool refilled, on the next
        // macrotask, after the caller has its result (terminating a Worker or starting a
        // process blocks for a millisecond or more).
        if (!guestFinished) ch.kill();
        resolve(r);
        setTimeout(() => {
          ch.kill();
          this.#pool.fill();
        }, 0);
      };
      const fail = (kind: NonNullable<ExecuteResult["error"]>["kind"], message: string): void => settle(finish({ ok: false, error: { kind, message } }));
      const timer = setTimeout(() => fail("timeout", `execute: timed out after ${req.timeoutMs}ms (the isolate was stopped)`), req.timeoutMs);
      const onAbort = (): void => fail("cancelled", `execute: cancelled: ${String((opts.signal?.reason as Error | undefined)?.message ?? "aborted")}`);
      opts.signal?.addEventListener("abort", onAbort, { once: true });

      const countOutput = (n: number): boolean => {
        outBytes += n;
        if (outBytes <= this.#outputLimit) return true;
        truncated = true;
        fail("output", `execute: output limit of ${this.#outputLimit} bytes exceeded (the isolate was stopped)`);
        return false;
      };
      const reply = (msg: HostMessage): void => {
        if (!settled) ch.send(msg);
      };

      ch.onMessage((msg: GuestMessage) => {
        if (settled) return;
        switch (msg.t) {
          case "log": {
            const line = msg.level === "log" ? msg.text : `[${msg.level}] ${msg.text}`;
            if (countOutput(line.length + 1)) logs.push(line);
            return;
          }
          case "done": {
            if (!msg.ok) return settle(finish({ ok: false, error: { kind: "error", message: `${msg.error.name}: ${msg.error.message}` } }), true);
            const size = msg.value === undefined ? 0 : JSON.stringify(msg.value).length;
            if (!countOutput(size)) return;
            return settle(finish({ ok: true, value: msg.value }), true);
          }
          case "call":
            void this.#answer(msg.fn, msg.args, tools, outbound).then(
              (value) => reply({ t: "reply", id: msg.id, ok: true, value }),
              (e: unknown) => reply({ t: "reply", id: msg.id, ok: false, error: guestError(e) }),
            );
            return;
          case "ready":
            return;
        }
      });
      ch.exited.then((exit) => {
        if (exit.reason === "out-of-memory") fail("memory", `execute: the snippet ran out of memory (limit ${this.#pool.limits.memoryMiB} MiB; the isolate was stopped)`);
        else fail("crashed", `execute: the isolate ${exit.reason}${exit.detail ? `: ${exit.detail}` : ""} before the snippet finished`);
      });
      ch.send({ t: "run", code });
    });
  }

  async #answer(fn: string, args: unknown[], tools: NonNullable<GuestBindings["tools"]>, outbound: NonNullable<GuestBindings["outbound"]>): Promise<unknown> {
    const fs = this.fs;
    const s = (i: number): string => {
      const v = args[i];
      if (typeof v !== "string") throw new WorkspaceFsError("EINVAL", `argument ${i + 1} must be a string`);
      return v;
    };
    switch (fn) {
      case "fs.readFile":
        return toBase64(await fs.readFile(s(0)));
      case "fs.writeFile":
        await fs.writeFile(s(0), fromBase64(s(1)));
        return null;
      case "fs.readdir":
        return await fs.readdir(s(0));
      case "fs.stat":
        return await fs.stat(s(0));
      case "fs.mkdir":
        await fs.mkdir(s(0), { recursive: true });
        return null;
      case "fs.remove":
        await fs.remove(s(0), { recursive: args[1] === true });
        return null;
      case "fs.rename":
        await fs.rename(s(0), s(1));
        return null;
      case "fs.exists":
        return await fs.exists(s(0));
      case "tool": {
        const name = s(0);
        const run = Object.hasOwn(tools, name) ? tools[name] : undefined;
        if (!run) throw new Error(`no tool named ${JSON.stringify(name)} is available to code (have: ${Object.keys(tools).join(", ") || "none"})`);
        return await run(args[1]);
      }
      case "fetch":
        return await relayFetch(args[0] as WireRequest, outbound);
      default:
        throw new Error(`unknown call ${JSON.stringify(fn)}`);
    }
  }

  snapshot(): Promise<WorkspaceSnapshot> {
    return snapshotWorkspace(this.fs);
  }
  restore(s: WorkspaceSnapshot): Promise<void> {
    return restoreWorkspace(this.fs, s);
  }
  async close(): Promise<void> {}
}

function guestError(e: unknown): string {
  if (e instanceof WorkspaceFsError) return `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}

async function relayFetch(w: WireRequest, outbound: NonNullable<GuestBindings["outbound"]>): Promise<unknown> {
  if (!w || typeof w.url !== "string") throw new Error("fetch: bad request");
  const init: RequestInit = { method: w.method, headers: w.headers, redirect: w.redirect === "manual" || w.redirect === "error" ? w.redirect : "follow" };
  if (w.body !== undefined) {
    const body = fromBase64(w.body) as Uint8Array<ArrayBuffer>;
    init.body = body;
    // A known length goes upstream as content-length, not chunked (some servers refuse chunked uploads).
    const headers = new Headers(w.headers);
    headers.set("content-length", String(body.byteLength));
    init.headers = headers;
  }
  const res = await outbound(new Request(w.url, init));
  const headers: Array<[string, string]> = [];
  res.headers.forEach((v, k) => headers.push([k, v]));
  // Read at most the cap; a larger body is an error, not a host-memory blowup.
  const chunks: Uint8Array[] = [];
  let n = 0;
  if (res.body) {
    const rd = res.body.getReader();
    for (let c = await rd.read(); !c.done; c = await rd.read()) {
      n += c.value.byteLength;
      if (n > MAX_FETCH_RESPONSE_BYTES) {
        await rd.cancel();
        throw new Error(`fetch: response body larger than ${MAX_FETCH_RESPONSE_BYTES} bytes`);
      }
      chunks.push(c.value);
    }
  }
  const body = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) body.set(c, (o += c.byteLength) - c.byteLength);
  return { status: res.status, statusText: res.statusText, headers, body: toBase64(body) };
}
