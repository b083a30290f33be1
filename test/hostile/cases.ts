/**
 * The hostile-code suite: what untrusted code in a snippet tries, and how we tell whether the
 * tier stopped it. Runtime-neutral (Web APIs only) so the same cases run in every runtime that
 * hosts a tier: Node (Deno subprocess, Workers through miniflare), Bun (its worker and bubblewrap
 * tiers), Deno (its own subprocess host). Host-side facts (did a marker file appear, did the
 * forbidden server see a request or a socket) come from the control server
 * (control-server.ts), asked over HTTP, so the runner needs nothing but fetch.
 *
 * Each snippet tries every runtime's way to do the forbidden thing (Deno.*, Bun.*, node:*,
 * cloudflare:*), catching each failure, and returns what it got.
 */
import type { ExecuteResult, Sandbox } from "../../core/sandbox/sandbox.ts";

export interface HostileEnv {
  /** The control server (control-server.ts). */
  control: string;
  /** A URL on the control server that no policy allows; hits are counted. */
  forbiddenUrl: string;
  /** host:port of the control server, for raw sockets. */
  forbiddenHost: string;
  forbiddenPort: number;
  /** A host file holding `canary`, and the name of a host env var holding it too. */
  hostFile: string;
  envName: string;
  canary: string;
  /** A host path no guest may create (the control server reports whether it exists). */
  markerPath: string;
}

export interface HostileCase {
  id: string;
  /** Column text for the README table. */
  label: string;
  timeoutMs: number;
  /**
   * The snippet catches each attempt and returns what it got, so it must complete: one that
   * fails (a syntax error in the case itself) proves nothing and counts as not stopped.
   * False for the cases whose point is that the tier stops the snippet.
   */
  mustComplete?: boolean;
  code(env: HostileEnv): string;
  /** Was the attack stopped? `detail` says what happened, for the test's failure message. */
  judge(r: ExecuteResult, env: HostileEnv, probe: Probe): Promise<{ stopped: boolean; detail: string }>;
}

export interface Probe {
  /** Zero the counts and remove the marker (before each case). */
  reset(): Promise<void>;
  hits(): Promise<{ requests: number; sockets: number }>;
  markerExists(): Promise<boolean>;
}

const show = (r: ExecuteResult): string => JSON.stringify({ ok: r.ok, value: r.value, error: r.error, logs: r.logs.slice(0, 5) }).slice(0, 600);
const leaked = (r: ExecuteResult, canary: string): boolean => JSON.stringify([r.value, r.logs, r.error]).includes(canary);
const notLeaked = async (r: ExecuteResult, env: HostileEnv) => ({ stopped: !leaked(r, env.canary), detail: show(r) });

/** `tries` runs each attempt, records its value or error: the snippet's common prologue. */
const TRIES = `
const got = {};
const attempt = async (name, f) => { try { got[name] = String(await f()).slice(0, 4000); } catch (e) { got[name] = "refused: " + String(e && e.message || e).slice(0, 200); } };
`;

export const HOSTILE_CASES: HostileCase[] = [
  {
    id: "read-host-file",
    label: "read a host file",
    timeoutMs: 10_000,
    code: (e) => `${TRIES}
await attempt("deno", () => Deno.readTextFileSync(${JSON.stringify(e.hostFile)}));
await attempt("bun", () => Bun.file(${JSON.stringify(e.hostFile)}).text());
await attempt("node:fs", async () => (await import("node:fs")).readFileSync(${JSON.stringify(e.hostFile)}, "utf8"));
await attempt("require", () => require("fs").readFileSync(${JSON.stringify(e.hostFile)}, "utf8"));
await attempt("workspace", () => workspace.readFile(${JSON.stringify(e.hostFile)}));
await attempt("workspace-dotdot", () => workspace.readFile("../../../../.." + ${JSON.stringify(e.hostFile)}));
await attempt("fetch-file", async () => (await globalThis.fetch("file://" + ${JSON.stringify(e.hostFile)})).text());
return got;`,
    judge: async (r, e) => notLeaked(r, e),
  },
  {
    id: "read-host-env",
    label: "read host env",
    timeoutMs: 10_000,
    code: (e) => `${TRIES}
await attempt("deno", () => Deno.env.get(${JSON.stringify(e.envName)}));
await attempt("process", () => globalThis.process && process.env[${JSON.stringify(e.envName)}]);
await attempt("bun", () => Bun.env[${JSON.stringify(e.envName)}]);
await attempt("all-deno", () => JSON.stringify(Deno.env.toObject()));
await attempt("all-process", () => JSON.stringify(globalThis.process && process.env));
return got;`,
    judge: async (r, e) => notLeaked(r, e),
  },
  {
    id: "spawn-process",
    label: "spawn a process",
    timeoutMs: 10_000,
    code: (e) => `${TRIES}
const m = ${JSON.stringify(e.markerPath)};
await attempt("deno", () => new Deno.Command("/bin/sh", { args: ["-c", "echo pwned > " + m] }).outputSync().code);
await attempt("bun", () => Bun.spawnSync(["/bin/sh", "-c", "echo pwned > " + m]).exitCode);
await attempt("node", async () => (await import("node:child_process")).execSync("echo pwned > " + m).toString());
await attempt("require", () => require("child_process").execSync("echo pwned > " + m).toString());
return got;`,
    judge: async (r, _e, p) => ({ stopped: !(await p.markerExists()), detail: show(r) }),
  },
  {
    id: "write-host-file",
    label: "write a host file",
    timeoutMs: 10_000,
    code: (e) => `${TRIES}
const m = ${JSON.stringify(e.markerPath)};
await attempt("deno", () => Deno.writeTextFileSync(m, "pwned"));
await attempt("bun", () => Bun.write(m, "pwned"));
await attempt("node", async () => (await import("node:fs")).writeFileSync(m, "pwned"));
await attempt("workspace", () => workspace.writeFile("../../../../.." + m, "pwned"));
return got;`,
    judge: async (r, _e, p) => ({ stopped: !(await p.markerExists()), detail: show(r) }),
  },
  {
    id: "raw-socket",
    label: "open a raw socket",
    timeoutMs: 10_000,
    code: (e) => `${TRIES}
const host = ${JSON.stringify(e.forbiddenHost)}, port = ${e.forbiddenPort};
await attempt("deno", async () => { const c = await Deno.connect({ hostname: host, port }); await c.write(new TextEncoder().encode("GET /raw HTTP/1.0\\r\\n\\r\\n")); return "connected"; });
await attempt("bun", async () => { await Bun.connect({ hostname: host, port, socket: { data() {} } }); return "connected"; });
await attempt("node", async () => { const net = await import("node:net"); await new Promise((ok, no) => { const s = net.connect(port, host, () => { s.end("GET /raw HTTP/1.0\\r\\n\\r\\n"); ok(); }); s.on("error", no); }); return "connected"; });
await attempt("cloudflare", async () => { const { connect } = await import("cloudflare:sockets"); const s = connect({ hostname: host, port }); await s.opened; return "connected"; });
await new Promise((r) => setTimeout(r, 200));
return got;`,
    judge: async (r, _e, p) => {
      const h = await p.hits();
      return { stopped: h.sockets === 0, detail: `sockets seen: ${h.sockets}; ${show(r)}` };
    },
  },
  {
    id: "direct-fetch",
    label: "fetch a forbidden host directly",
    timeoutMs: 10_000,
    code: (e) => `${TRIES}
const u = ${JSON.stringify(e.forbiddenUrl)};
await attempt("stub", async () => (await fetch(u)).status);
await attempt("global", async () => (await globalThis.fetch(u)).status);
await attempt("bound", async () => (await Reflect.apply(Object.getPrototypeOf(globalThis).fetch ?? globalThis.fetch, globalThis, [u])).status);
await attempt("xhr", () => new Promise((ok, no) => { const x = new XMLHttpRequest(); x.onload = () => ok(x.status); x.onerror = no; x.open("GET", u); x.send(); }));
await attempt("websocket", () => new Promise((ok, no) => { const w = new WebSocket(u.replace("http", "ws")); w.onopen = () => ok("open"); w.onerror = () => no(new Error("ws error")); }));
return got;`,
    judge: async (r, _e, p) => {
      const h = await p.hits();
      return { stopped: h.requests === 0 && h.sockets === 0, detail: `requests: ${h.requests}, sockets: ${h.sockets}; ${show(r)}` };
    },
  },
  {
    id: "infinite-loop",
    mustComplete: false,
    label: "infinite loop",
    timeoutMs: 1_000,
    code: () => `while (true) {}`,
    judge: async (r) => ({ stopped: !r.ok && r.error?.kind === "timeout", detail: show(r) }),
  },
  {
    id: "memory-blowup",
    mustComplete: false,
    label: "memory blowup",
    timeoutMs: 20_000,
    code: () => `const a = []; while (true) a.push(new Array(1e6).fill(Math.random()));`,
    judge: async (r) => ({ stopped: !r.ok && (r.error?.kind === "memory" || r.error?.kind === "crashed"), detail: show(r) }),
  },
  {
    id: "output-flood",
    mustComplete: false,
    label: "flood of output",
    timeoutMs: 20_000,
    code: () => `while (true) console.log("x".repeat(10000));`,
    judge: async (r) => {
      const bytes = r.logs.reduce((n, l) => n + l.length + 1, 0);
      return { stopped: !r.ok && r.error?.kind === "output" && bytes <= 200 * 1024, detail: `${bytes} bytes kept; ${show(r)}` };
    },
  },
  {
    id: "bridge-escape",
    label: "host objects via the bridge",
    timeoutMs: 10_000,
    code: (e) => `${TRIES}
const name = ${JSON.stringify(e.envName)}, hf = ${JSON.stringify(e.hostFile)};
const envOf = (g) => g.process ? g.process.env[name] : g.Deno ? g.Deno.env.get(name) : g.Bun ? g.Bun.env[name] : "no env API";
await attempt("ctor-workspace", () => envOf(workspace.readFile.constructor("return globalThis")()));
await attempt("ctor-tools", () => envOf(tools.constructor.constructor("return this")()));
await attempt("ctor-fetch", () => fetch.constructor("n", "return typeof process !== 'undefined' ? process.env[n] : 'none'")(name));
await attempt("ctor-console", () => console.log.constructor("f", "return typeof require !== 'undefined' ? require('fs').readFileSync(f, 'utf8') : 'none'")(hf));
return got;`,
    judge: async (r, e) => notLeaked(r, e),
  },
  {
    id: "prototype-pollution",
    label: "prototype pollution of what the host passes in",
    timeoutMs: 10_000,
    code: () => `${TRIES}
await attempt("proto", () => { Object.prototype.deftPolluted = "yes"; return "set"; });
await attempt("json-proto", () => workspace.writeFile(JSON.parse('{"__proto__": {"deftPolluted": "yes"}}'), "x"));
await attempt("tool-input", () => tools.nonexistent(JSON.parse('{"__proto__": {"deftPolluted": "yes"}, "constructor": {"prototype": {"deftPolluted": "yes"}}}')));
await attempt("stat-proto", async () => { const s = await workspace.stat("."); Object.getPrototypeOf(s).deftPolluted = "yes"; return "set"; });
return got;`,
    // The harness checks the host's own Object.prototype after the run.
    judge: async (r) => {
      const polluted = (Object.prototype as Record<string, unknown>)["deftPolluted"] !== undefined;
      return { stopped: !polluted, detail: show(r) };
    },
  },
  {
    id: "timers-after-call",
    label: "timers left running after the call",
    timeoutMs: 10_000,
    code: () => `setTimeout(() => workspace.writeFile("late.txt", "ran after the call"), 150);
setInterval(() => workspace.writeFile("tick.txt", String(Date.now())), 50);
return "returned";`,
    // Judged by the harness: after 600 ms, neither file may exist in the session's workspace.
    judge: async (r) => ({ stopped: r.ok, detail: show(r) }),
  },
];

export const CROSS_SESSION = { id: "cross-session", label: "read another session's workspace" };

export interface HostileResult {
  id: string;
  label: string;
  stopped: boolean;
  detail: string;
}

/**
 * Run every case against a tier. `makeSandbox` gives a fresh sandbox for a session id; the
 * cross-session case makes two.
 */
export async function runHostileSuite(makeSandbox: (sessionId: string) => Promise<Sandbox>, env: HostileEnv, probe: Probe, only?: string[]): Promise<HostileResult[]> {
  const out: HostileResult[] = [];
  for (const c of HOSTILE_CASES) {
    if (only && !only.includes(c.id)) continue;
    await probe.reset();
    const sb = await makeSandbox(`sesn_hostile_${c.id}`);
    try {
      const r = await sb.execute({ code: c.code(env), language: "js", timeoutMs: c.timeoutMs });
      let { stopped, detail } = await c.judge(r, env, probe);
      if (c.mustComplete !== false && !r.ok) {
        stopped = false;
        detail = `the snippet did not complete, so it proves nothing: ${detail}`;
      }
      if (c.id === "timers-after-call") {
        await new Promise((res) => setTimeout(res, 600));
        const late = (await sb.fs.exists("late.txt")) || (await sb.fs.exists("tick.txt"));
        stopped = stopped && !late;
        detail = `late writes: ${late}; ${detail}`;
      }
      if (c.id === "prototype-pollution") delete (Object.prototype as Record<string, unknown>)["deftPolluted"];
      out.push({ id: c.id, label: c.label, stopped, detail });
    } finally {
      await sb.close();
    }
  }
  if (!only || only.includes(CROSS_SESSION.id)) {
    const a = await makeSandbox("sesn_hostile_a");
    const b = await makeSandbox("sesn_hostile_b");
    try {
      await a.fs.writeFile("secret.txt", env.canary);
      const r = await b.execute({
        language: "js",
        timeoutMs: 10_000,
        code: `${TRIES}
await attempt("same-path", () => workspace.readFile("secret.txt"));
await attempt("abs", () => workspace.readFile("/workspace/secret.txt"));
await attempt("sibling", () => workspace.readFile("../sesn_hostile_a/secret.txt"));
await attempt("list", async () => JSON.stringify(await workspace.readdir("/")));
return got;`,
      });
      out.push({ id: CROSS_SESSION.id, label: CROSS_SESSION.label, stopped: r.ok && !leaked(r, env.canary), detail: show(r) });
    } finally {
      await a.close();
      await b.close();
    }
  }
  return out;
}
