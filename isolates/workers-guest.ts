/**
 * The Workers (Worker Loader) guest: the module text of one dynamic worker. workerd forbids
 * eval and `new Function`, so the snippet cannot arrive as a `run` message to be compiled; the
 * shim builds a worker per run whose modules are
 *   snippet.js  `async function run(workspace, tools, fetch, console) { <snippet> }` (its default export)
 *               in a module of its own: it sees neither `env` nor the transport
 *   guest.js    the prelude (`guestMainSource()`) with a transport over `env.HOST`, a service
 *               binding to the host: a call is POSTed at once, with whatever console output is
 *               queued before it, in a numbered batch (the host puts batches back in order); a
 *               batch's response carries the replies to its calls. Output with no call behind
 *               it waits (up to LOG_FLUSH_BYTES), and the rest, `done` included, comes back as
 *               the last batch in the response to the parent's fetch: a snippet that makes no
 *               call costs no request to the host at all.
 * and runs the snippet when the parent worker fetches it. Runtime-neutral: text only.
 */
import { guestMainSource } from "./guest.ts";

export interface WorkersGuestOptions {
  /**
   * Console bytes after which the guest's console throws. A CPU-bound console loop cannot send
   * anything until it yields, so the host's output limit alone cannot stop it; this cap ends the
   * loop inside the guest. Keep it above the host's output limit (the host still decides).
   */
  logCapBytes: number;
}

export const WORKERS_GUEST_MAIN = "guest.js";

/** Queued console bytes that are sent to the host without waiting for a call or the end. */
export const LOG_FLUSH_BYTES = 32 * 1024;

/** What the guest's fetch handler answers: the last batch, and transport problems if any. */
export interface WorkersFinalBatch {
  seq: number;
  msgs: unknown[];
  problems: string[];
}

/** The header carrying a run's channel token on every guest → host request. */
export const WORKERS_TOKEN_HEADER = "x-deft-token";

/** The `modules` of a dynamic worker that runs `code` (JavaScript, an async function body). */
export function workersGuestModules(code: string, opts: WorkersGuestOptions): Record<string, string> {
  const snippet = `async function run(workspace, tools, fetch, console) {\n${code}\n}\nexport { run as default };\n`;
  const main = `import snippet from "./snippet.js";
const guestMain = (${guestMainSource()});
const CAP = ${Math.max(0, Math.floor(opts.logCapBytes))};
const worker = {
  async fetch(_request, env) {
    const host = env.HOST, token = env.TOKEN;
    let handler, seq = 0, queue = [], queuedBytes = 0, scheduled = false, logBytes = 0, finished;
    const problems = [];
    const inflight = new Set();
    const done = new Promise((r) => (finished = r));
    const flush = () => {
      scheduled = false;
      if (!queue.length) return;
      const msgs = queue;
      queue = [];
      queuedBytes = 0;
      const p = host
        .fetch("http://host/msg", { method: "POST", headers: { "${WORKERS_TOKEN_HEADER}": token, "content-type": "application/json" }, body: JSON.stringify({ seq: seq++, msgs }) })
        .then((r) => (r.ok ? r.json() : (problems.push("host answered " + r.status), [])))
        .then((replies) => { for (const m of replies) handler && handler(m); }, (e) => { problems.push(String(e && e.message || e)); })
        .finally(() => inflight.delete(p));
      inflight.add(p);
    };
    const transport = {
      send(msg) {
        if (msg.t === "ready") return; // the run starts with the fetch: nothing to announce
        if (msg.t === "log") {
          logBytes += msg.text.length + 1;
          if (logBytes > CAP + msg.text.length + 1) throw new Error("console output limit of " + CAP + " bytes exceeded");
          queuedBytes += msg.text.length + 1;
        }
        queue.push(msg);
        if (msg.t === "done") return finished();
        if ((msg.t === "call" || queuedBytes > ${LOG_FLUSH_BYTES}) && !scheduled) { scheduled = true; queueMicrotask(flush); }
      },
      onMessage(h) { handler = h; },
    };
    guestMain(transport, snippet);
    handler({ t: "run", code: "" });
    await done;
    while (inflight.size) await Promise.allSettled([...inflight]);
    return Response.json({ seq: seq++, msgs: queue, problems });
  },
};
export { worker as default };
`;
  return { [WORKERS_GUEST_MAIN]: main, "snippet.js": snippet };
}
