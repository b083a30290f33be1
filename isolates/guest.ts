/**
 * The guest prelude: what runs inside every isolate before the snippet. It gives the snippet
 *   workspace  async file functions over the session's workspace (on the host)
 *   tools      the session's other tools as async functions: `await tools.read({file_path})`
 *   fetch      a stub that carries the request to the host's outbound handler
 *   console    captured, sent to the host line by line
 * and runs the snippet as the body of an async function (its `return` is the result).
 *
 * `guestMain` is shipped as source text (`guestMainSource()`), so it must be self-contained: no
 * imports, nothing from module scope. Each shim wraps it with a transport (`send`, `onMessage`)
 * and, on Workers where the guest cannot evaluate strings, a precompiled snippet.
 */
import type { GuestMessage, HostMessage } from "./protocol.ts";

export interface GuestTransport {
  send(msg: GuestMessage): void;
  onMessage(handler: (msg: HostMessage) => void): void;
}

type Snippet = (workspace: unknown, tools: unknown, fetch: unknown, console: unknown) => Promise<unknown>;

export function guestMain(transport: GuestTransport, precompiled?: Snippet): void {
  const b64 = (bytes: Uint8Array): string => {
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(s);
  };
  const unb64 = (s: string): Uint8Array => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  const call = (fn: string, args: unknown[]): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      transport.send({ t: "call", id, fn: fn as never, args });
    });

  const format = (v: unknown): string => {
    if (typeof v === "string") return v;
    if (v instanceof Error) return v.stack ?? `${v.name}: ${v.message}`;
    try {
      return JSON.stringify(v) ?? String(v);
    } catch {
      return String(v);
    }
  };
  const captured: Record<string, (...a: unknown[]) => void> = {};
  for (const level of ["log", "info", "warn", "error", "debug"] as const) {
    captured[level] = (...a: unknown[]) => transport.send({ t: "log", level, text: a.map(format).join(" ") });
  }
  const consoleStub = Object.freeze(captured);

  const workspace = Object.freeze({
    readFile: async (path: string): Promise<string> => dec.decode(unb64((await call("fs.readFile", [String(path)])) as string)),
    readBytes: async (path: string): Promise<Uint8Array> => unb64((await call("fs.readFile", [String(path)])) as string),
    writeFile: async (path: string, data: string | Uint8Array): Promise<void> =>
      void (await call("fs.writeFile", [String(path), b64(typeof data === "string" ? enc.encode(data) : data)])),
    readdir: (path = "."): Promise<unknown> => call("fs.readdir", [String(path)]),
    stat: (path: string): Promise<unknown> => call("fs.stat", [String(path)]),
    mkdir: async (path: string): Promise<void> => void (await call("fs.mkdir", [String(path)])),
    remove: async (path: string, opts?: { recursive?: boolean }): Promise<void> => void (await call("fs.remove", [String(path), !!opts?.recursive])),
    rename: async (from: string, to: string): Promise<void> => void (await call("fs.rename", [String(from), String(to)])),
    exists: (path: string): Promise<unknown> => call("fs.exists", [String(path)]),
  });
  const tools = new Proxy(Object.freeze({}), {
    get: (_t, name) => (typeof name === "string" ? (input: unknown) => call("tool", [name, input ?? {}]) : undefined),
  });
  const guestFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const req = new Request(input, init);
    const body = req.body ? b64(new Uint8Array(await req.arrayBuffer())) : undefined;
    const headers: Array<[string, string]> = [];
    req.headers.forEach((v, k) => headers.push([k, v]));
    const r = (await call("fetch", [{ url: req.url, method: req.method, headers, redirect: req.redirect, ...(body !== undefined ? { body } : {}) }])) as {
      status: number;
      statusText: string;
      headers: Array<[string, string]>;
      body: string;
    };
    const nullBody = r.status === 204 || r.status === 205 || r.status === 304 || req.method === "HEAD";
    return new Response(nullBody ? null : (unb64(r.body) as Uint8Array<ArrayBuffer>), { status: r.status, statusText: r.statusText, headers: r.headers });
  };

  const toJson = (v: unknown): unknown => {
    if (v === undefined) return undefined;
    try {
      return JSON.parse(JSON.stringify(v) ?? "null");
    } catch {
      return String(v);
    }
  };

  let started = false;
  transport.onMessage((msg) => {
    if (msg.t === "reply") {
      const p = pending.get(msg.id);
      if (!p) return;
      pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.value);
      else p.reject(new Error(msg.error));
      return;
    }
    if (msg.t !== "run" || started) return;
    started = true;
    void (async () => {
      try {
        const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (...a: string[]) => Snippet;
        const fn = precompiled ?? new AsyncFunction("workspace", "tools", "fetch", "console", msg.code);
        const value = await fn(workspace, tools, guestFetch, consoleStub);
        transport.send({ t: "done", ok: true, value: toJson(value) });
      } catch (e) {
        const err = e instanceof Error ? e : new Error(format(e));
        transport.send({ t: "done", ok: false, error: { name: err.name, message: err.message } });
      }
    })();
  });
  transport.send({ t: "ready" });
}

/**
 * The prelude as a JavaScript expression: `(${guestMainSource()})(transport, snippet?)`. The
 * function's source is whatever the host's loader made of it; a TypeScript loader that keeps
 * names (tsx, esbuild's keepNames) adds calls to a module-level `__name` helper, which the guest
 * does not have, so the expression brings its own.
 */
export function guestMainSource(): string {
  return (source ??= `(() => { var __name = (f) => f; return ${guestMain.toString()}; })()`);
}
let source: string | undefined;
