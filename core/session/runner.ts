/**
 * The session runner: holds a session's event stream, routes each tool call to the router,
 * and posts exactly one result per call.
 *
 * Guarantees, and how:
 * - Nothing missed on reconnect: the stream is opened first (headers received), then the whole
 *   history is listed, so an event emitted between the two is in one or the other.
 * - No call runs twice: `seen` marks every call routed by this runner; the ledger marks every
 *   call started by any runner (across reconnects and, with a durable ledger, across processes).
 * - No call goes unanswered: after every reconcile each unanswered call is routed again; a
 *   recorded result is re-posted, a start with no result is answered as interrupted.
 * - Calls of one turn run concurrently; the stream is read while tools run.
 */
import type Anthropic from "@anthropic-ai/sdk";
import {
  isFatal4xx,
  parseEvent,
  type AgentCustomToolUse,
  type AgentToolUse,
  type CustomToolResultParams,
  type KnownEvent,
  type ToolResultParams,
  type UserCustomToolResult,
  type UserToolResult,
} from "../contract/mod.ts";
import type { Logger } from "../log.ts";
import { errorResult, type CallKind, type Router, type ToolResult } from "../router/mod.ts";
import { backoffMs, isAbortError, sleep } from "../timing.ts";
import type { SessionLedger } from "./ledger.ts";
import { readSessionEvents } from "./sse.ts";
import { ResultPostError, ResultPoster } from "./result-poster.ts";

/** Reconnect backoff: 500 ms doubling, capped at 10 s, reset by every event (spec §7.1). */
export const STREAM_RECONNECT_BASE_MS = 500;
export const STREAM_RECONNECT_CAP_MS = 10_000;
/** After a connection that delivered events closes, reconnect after this short pause. */
export const STREAM_RECONNECT_AFTER_EVENTS_MS = 50;
/** A stream that delivers no bytes (not even a ping) for this long is presumed dead and reopened. */
export const STREAM_IDLE_RECONNECT_MS = 90_000;
/** Per-tool timeout unless the tool declares its own (spec §7.1). */
export const TOOL_TIMEOUT_MS = 120_000;
/** Idle end: after a turn-ending idle with nothing outstanding (spec §8). */
export const MAX_IDLE_MS = 60_000;
/** Result send retry: 1 s doubling, capped at 30 s, within the lease TTL window. */
export const SEND_BACKOFF_BASE_MS = 1_000;
export const SEND_BACKOFF_CAP_MS = 30_000;
/** Results that finish while a post is in flight go out together, up to this many a request. */
export const MAX_RESULTS_PER_POST = 20;
/** Later history listings start this long before the newest event already handled. */
export const HISTORY_OVERLAP_MS = 5_000;
/** History page size (the API accepts up to 1000). */
export const HISTORY_PAGE_LIMIT = 1000;

/** Events that neither arm nor disarm the idle clock (a late usage or span must not keep us). */
const NEUTRAL_TYPES = new Set(["user.tool_confirmation", "session.thread_status_terminated", "session.usage", "session.updated"]);
const isNeutral = (type: string) => NEUTRAL_TYPES.has(type) || type.startsWith("span.");

export type RunnerEndReason = "terminated" | "deleted" | "idle" | "aborted" | "drained" | "fatal";

export interface RunnerEnd {
  reason: RunnerEndReason;
  detail?: string;
}

export interface SessionRunnerOptions {
  /** The API client. */
  client: Anthropic;
  /** Headers that authenticate this work item's calls (the sessions token), added to each. */
  headers?: Record<string, string>;
  sessionId: string;
  router: Router;
  ledger: SessionLedger;
  log: Logger;
  /** Hard stop: lease lost, stop requested, shutdown past the drain timeout. */
  signal: AbortSignal;
  maxIdleMs?: number;
  toolTimeoutMs?: number;
  streamIdleMs?: number;
  /** The live lease TTL in ms: how long a result may keep being retried. */
  sendWindowMs?: () => number;
  /** Observer for the live transcript (every event, as received, after parsing). */
  onEvent?: (event: { type: string; [k: string]: unknown }) => void;
  /** Observer for each finished call (transcript, metrics). */
  onResult?: (call: { id: string; name: string; kind: CallKind; result: ToolResult; ms: number; replayed: boolean }) => void;
  random?: () => number;
}

type Outgoing = { call: Call; event: ToolResultParams | CustomToolResultParams; done: () => void };

type Call = {
  id: string;
  name: string;
  input: Record<string, unknown>;
  kind: CallKind;
  threadId?: string | null;
  permission?: string | null;
};

export class SessionRunner {
  readonly #o: SessionRunnerOptions;
  readonly #log: Logger;
  readonly #maxIdleMs: number;
  readonly #toolTimeoutMs: number;
  /** Ids of calls routed by this runner (never routed twice). */
  readonly #seen = new Set<string>();
  /** Ids of calls with a result on the server (ours or anyone's). */
  readonly #answered = new Set<string>();
  /** Calls waiting for a confirmation. */
  readonly #held = new Map<string, Call>();
  /** Verdicts that arrived before (or for) their call. */
  readonly #verdicts = new Map<string, "allow" | "deny">();
  readonly #terminatedThreads = new Set<string>();
  /** Calls running now, with the promise that settles when their result is posted (or given up). */
  readonly #running = new Map<string, Promise<void>>();
  /** Event ids listed by the latest reconcile: their stream copies are skipped. */
  #historyIds = new Set<string>();
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #idleWanted = false;
  #end: RunnerEnd | undefined;
  #endResolve!: (end: RunnerEnd) => void;
  readonly #ended: Promise<RunnerEnd>;
  #draining = false;
  /** One listener on the session signal stops every running tool (not one listener per call). */
  readonly #hardStops = new Set<() => void>();
  readonly #outbox: Outgoing[] = [];
  /** Calls whose recorded result did not get through; posted again (not re-run) on reconcile. */
  readonly #unposted = new Map<string, Call>();
  /** `processed_at` of the newest event handled: later reconciles list only from about there. */
  #since: string | undefined;
  readonly #poster: ResultPoster;
  #sending = false;
  #turnEnded = false;
  /** Ids handed to `onEvent` (kept only when there is an observer). */
  readonly #emitted = new Set<string>();
  #conn: AbortController | undefined;

  constructor(opts: SessionRunnerOptions) {
    this.#o = opts;
    this.#log = opts.log;
    this.#maxIdleMs = opts.maxIdleMs ?? MAX_IDLE_MS;
    this.#toolTimeoutMs = opts.toolTimeoutMs ?? TOOL_TIMEOUT_MS;
    this.#ended = new Promise((r) => (this.#endResolve = r));
    this.#poster = new ResultPoster(opts.client, opts.sessionId, opts.headers);
    const onAbort = () => {
      this.#finish({ reason: "aborted" });
      for (const stop of [...this.#hardStops]) stop();
    };
    if (opts.signal.aborted) onAbort();
    else opts.signal.addEventListener("abort", onAbort, { once: true });
  }

  /** Calls held for confirmation or running now. */
  get outstanding(): number {
    return this.#held.size + this.#running.size;
  }

  /** The last turn ended and nothing is held or running: stopping the item now loses nothing. */
  get atRest(): boolean {
    return this.#turnEnded && this.outstanding === 0;
  }

  /** Stop reading new events and resolve when every running call has posted its result. */
  async drain(): Promise<void> {
    this.#draining = true;
    this.#finish({ reason: "drained" });
    await this.settled();
  }

  /** Resolves when every running call has settled. */
  async settled(): Promise<void> {
    while (this.#running.size) await Promise.allSettled([...this.#running.values()]);
  }

  /** Run until the session ends, goes idle, or the runner is aborted or drained. */
  async run(): Promise<RunnerEnd> {
    void this.#connectLoop();
    return this.#ended;
  }

  #finish(end: RunnerEnd) {
    if (this.#end) return;
    this.#end = end;
    clearTimeout(this.#idleTimer);
    this.#conn?.abort();
    this.#endResolve(end);
  }

  async #connectLoop(): Promise<void> {
    const random = this.#o.random ?? Math.random;
    let failures = 0;
    while (!this.#end) {
      const conn = new AbortController();
      this.#conn = conn;
      let delivered = false;
      const idleMs = this.#o.streamIdleMs ?? STREAM_IDLE_RECONNECT_MS;
      // Watchdog: a stream silent for idleMs is presumed dead. Events only stamp a time; the
      // timer re-arms itself for the remainder, so the hot path never touches a timer.
      let lastEvent = Date.now();
      let watchdog: ReturnType<typeof setTimeout> | undefined;
      const check = () => {
        const quiet = Date.now() - lastEvent;
        if (quiet >= idleMs) conn.abort(new Error(`stream idle for ${idleMs}ms`));
        else watchdog = setTimeout(check, idleMs - quiet);
      };
      try {
        // The SDK opens the stream (auth, headers, retries on connect); Deft decodes the events.
        const res = await this.#o.client.beta.sessions.events.stream(this.#o.sessionId, {}, { signal: conn.signal, headers: this.#o.headers }).asResponse();
        if (!res.body) throw new Error("the event stream answered without a body");
        lastEvent = Date.now();
        watchdog = setTimeout(check, idleMs);
        if (this.#end) break;
        await this.#reconcile(conn.signal);
        await readSessionEvents(
          res.body,
          (raw) => {
            if (this.#end) return;
            delivered = true;
            failures = 0;
            this.#onLive(raw);
          },
          () => (lastEvent = Date.now()), // any bytes, pings included, prove the stream alive
        );
        this.#log.debug("stream closed by server", {});
      } catch (err) {
        if (this.#end) break;
        const status = (err as { status?: number }).status;
        if (isFatal4xx(status)) {
          this.#log.error("session stream rejected; ending runner", { status, error: String(err) });
          this.#finish({ reason: "fatal", detail: `stream or history answered ${status}` });
          break;
        }
        if (!(conn.signal.aborted && isAbortError(err))) {
          this.#log.warn("session stream failed; reconnecting", { error: err instanceof Error ? err.message : String(err) });
        }
      } finally {
        clearTimeout(watchdog);
        conn.abort();
      }
      if (this.#end) break;
      const wait = delivered ? STREAM_RECONNECT_AFTER_EVENTS_MS : backoffMs(failures++, STREAM_RECONNECT_BASE_MS, STREAM_RECONNECT_CAP_MS, random);
      await sleep(wait, this.#o.signal).catch(() => {});
    }
  }

  /**
   * List the whole history, then route every call still unanswered, in history order. If the
   * listing fails part way nothing of it is applied: the live stream carries on and the next
   * reconnect lists again.
   */
  async #reconcile(signal: AbortSignal): Promise<void> {
    const history: unknown[] = [];
    try {
      // The first listing reads the whole history; later ones start a margin before the newest
      // event already handled (ids dedupe the overlap): a reconnect costs O(new events), not
      // O(history). Calls from before that point that still lack a result are known here
      // (running, held, or in #unposted), so nothing older needs listing again.
      const since = this.#since ? new Date(Date.parse(this.#since) - HISTORY_OVERLAP_MS).toISOString() : undefined;
      for await (const ev of this.#o.client.beta.sessions.events.list(
        this.#o.sessionId,
        { limit: HISTORY_PAGE_LIMIT, ...(since ? { "created_at[gte]": since } : {}) },
        { signal, headers: this.#o.headers },
      ) as AsyncIterable<unknown>) {
        history.push(ev);
      }
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (isFatal4xx(status)) throw err;
      if (this.#end || signal.aborted) throw err;
      this.#log.warn("history listing failed; continuing on the live stream", { error: String(err) });
      return;
    }
    const ids = new Set<string>();
    const calls: Call[] = [];
    let lastTurnEnding: boolean | undefined;
    for (const raw of history) {
      const parsed = parseEvent(raw);
      if (!parsed.ok) {
        this.#log.warn("skipping malformed event", { event_id: parsed.id, event_type: parsed.type, issue: parsed.issue });
        continue;
      }
      const ev = parsed.event;
      if (ev.id) ids.add(ev.id);
      this.#noteTime(ev);
      this.#emit(ev);
      if (!isNeutral(ev.type)) lastTurnEnding = ev.type === "session.status_idle" ? endsTurn(ev as KnownEvent) : false;
      if (!parsed.known) continue;
      const k = ev as KnownEvent;
      switch (k.type) {
        case "agent.tool_use":
        case "agent.custom_tool_use":
          calls.push(toCall(k));
          break;
        case "user.tool_result":
        case "user.custom_tool_result":
          this.#markAnswered(answeredId(k));
          break;
        case "user.tool_confirmation":
          if (!this.#answered.has(k.tool_use_id)) this.#verdicts.set(k.tool_use_id, k.result === "allow" ? "allow" : "deny");
          break;
        case "session.thread_status_terminated":
          this.#terminatedThreads.add(k.session_thread_id);
          break;
        case "session.status_terminated":
          this.#finish({ reason: "terminated" });
          return;
        case "session.deleted":
          this.#finish({ reason: "deleted" });
          return;
      }
    }
    this.#historyIds = ids;
    for (const call of calls) {
      if (this.#end) return;
      if (!this.#answered.has(call.id)) this.#route(call);
      else this.#seen.add(call.id);
    }
    for (const call of this.#unposted.values()) {
      this.#unposted.delete(call.id);
      if (!this.#answered.has(call.id)) this.#execute(call); // the ledger has its result: re-post only
    }
    // An idle missed while disconnected still ends the session.
    if (lastTurnEnding !== undefined) this.#turnEnded = lastTurnEnding;
    if (lastTurnEnding) this.#armIdle();
  }

  #onLive(raw: unknown) {
    const parsed = parseEvent(raw);
    if (!parsed.ok) {
      this.#log.warn("skipping malformed event", { event_id: parsed.id, event_type: parsed.type, issue: parsed.issue });
      return;
    }
    const ev = parsed.event;
    if (ev.id && this.#historyIds.has(ev.id)) return;
    this.#noteTime(ev);
    this.#emit(ev);
    if (!isNeutral(ev.type)) {
      this.#turnEnded = ev.type === "session.status_idle" && endsTurn(ev as KnownEvent);
      if (this.#turnEnded) this.#armIdle();
      else this.#disarmIdle();
    }
    if (!parsed.known) return;
    const k = ev as KnownEvent;
    switch (k.type) {
      case "agent.tool_use":
      case "agent.custom_tool_use":
        this.#route(toCall(k));
        break;
      case "user.tool_result":
      case "user.custom_tool_result":
        this.#markAnswered(answeredId(k));
        break;
      case "user.tool_confirmation": {
        if (this.#answered.has(k.tool_use_id)) break;
        const verdict = k.result === "allow" ? "allow" : "deny";
        this.#verdicts.set(k.tool_use_id, verdict);
        const held = this.#held.get(k.tool_use_id);
        if (held) {
          this.#held.delete(held.id);
          if (verdict === "allow") this.#execute(held);
          else this.#answered.add(held.id); // the server answers a denied call itself
          this.#maybeArm();
        }
        break;
      }
      case "session.thread_status_terminated":
        this.#terminatedThreads.add(k.session_thread_id);
        for (const [id, call] of this.#held) if (call.threadId === k.session_thread_id) this.#held.delete(id);
        this.#maybeArm();
        break;
      case "session.status_terminated":
        this.#finish({ reason: "terminated" });
        break;
      case "session.deleted":
        this.#finish({ reason: "deleted" });
        break;
      case "session.error":
        this.#log.warn("session error", { error: k.error });
        break;
    }
  }

  #noteTime(ev: { type: string; processed_at?: unknown }) {
    if (typeof ev.processed_at === "string" && ev.processed_at) this.#since = ev.processed_at;
  }

  /** Hand each event to the observer once, whether it came from history or the stream. */
  #emit(ev: { type: string; id?: string }) {
    if (!this.#o.onEvent) return;
    if (ev.id) {
      if (this.#emitted.has(ev.id)) return;
      this.#emitted.add(ev.id);
    }
    this.#o.onEvent(ev as { type: string });
  }

  #markAnswered(id: string) {
    this.#answered.add(id);
    if (this.#held.delete(id)) this.#maybeArm();
  }

  /** Decide what to do with a call: skip, drop, hold, or execute. Never routes an id twice. */
  #route(call: Call) {
    if (this.#seen.has(call.id) || this.#draining) return;
    if (!this.#o.router.owns(call.kind, call.name)) return; // another client owns it: post nothing
    this.#seen.add(call.id);
    if (call.threadId && this.#terminatedThreads.has(call.threadId)) return;
    const permission = call.kind === "builtin" ? call.permission : "allow";
    if (permission === "deny") {
      this.#answered.add(call.id); // refused before any policy: the server answers it
      return;
    }
    if (permission !== "allow" && permission != null) {
      const verdict = this.#verdicts.get(call.id);
      if (verdict === "allow") return this.#execute(call);
      if (verdict === "deny") return void this.#answered.add(call.id);
      this.#held.set(call.id, call); // fail closed until a confirmation arrives
      return;
    }
    this.#execute(call);
  }

  #execute(call: Call) {
    this.#disarmIdle();
    const p = this.#executeAndPost(call).finally(() => {
      this.#running.delete(call.id);
      this.#maybeArm();
    });
    this.#running.set(call.id, p);
  }

  async #executeAndPost(call: Call): Promise<void> {
    const { ledger } = this.#o;
    const t0 = performance.now();
    let replayed = false;
    let result: ToolResult;
    const entry = ledger.get(call.id);
    const tool = this.#o.router.lookup(call.kind, call.name);
    if (entry?.state === "done") {
      result = entry.result; // answered before a crash or failed post: re-post, never re-run
      replayed = true;
    } else if (entry?.state === "started" && !tool?.idempotent) {
      result = errorResult(
        `${call.name}: interrupted: the worker running this call stopped before it finished; it was not run again because it may have had effects`,
      );
      replayed = true;
      await ledger.finished(call.id, result);
    } else {
      // "Started" exists to stop a second run of a call that may have had effects. An idempotent
      // tool runs again either way, so its started record would change nothing: skip the write.
      if (!tool?.idempotent) await ledger.started(call.id);
      result = await this.#runTool(call, tool?.timeoutMs ?? this.#toolTimeoutMs);
      // Cut off by lease loss or shutdown: the entry stays "started", so whoever holds the
      // session next reports it interrupted (or re-runs it if idempotent). Nothing is posted.
      if (this.#o.signal.aborted) return;
      await ledger.finished(call.id, result);
    }
    this.#o.onResult?.({ id: call.id, name: call.name, kind: call.kind, result, ms: performance.now() - t0, replayed });
    await this.#post(call, result);
  }

  async #runTool(call: Call, timeoutMs: number): Promise<ToolResult> {
    // The tool's AbortSignal is made only if the tool looks at it: most tools finish without,
    // and an AbortController costs tens of microseconds on Node.
    let ac: AbortController | undefined;
    let stopped: Error | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stop!: (msg: string) => void;
    // Settles on the timeout or on a hard stop, so a tool that ignores its signal cannot hold
    // the session: the race answers without it.
    const cutOff = new Promise<ToolResult>((resolve) => {
      stop = (msg) => {
        stopped = new Error(msg);
        ac?.abort(stopped);
        resolve(errorResult(msg));
      };
      timer = setTimeout(() => stop(`${call.name}: timed out after ${timeoutMs}ms`), timeoutMs);
    });
    const onHardStop = () => stop(`${call.name}: stopped: the session's work item ended`);
    if (this.#o.signal.aborted) onHardStop();
    else this.#hardStops.add(onHardStop);
    try {
      const log = this.#log;
      const ctx = {
        sessionId: this.#o.sessionId,
        toolUseId: call.id,
        get signal(): AbortSignal {
          if (!ac) {
            ac = new AbortController();
            if (stopped) ac.abort(stopped);
          }
          return ac.signal;
        },
        // Built on first use: most tools never log.
        get log() {
          return log.child({ tool_use_id: call.id, tool: call.name });
        },
      };
      return await Promise.race([this.#o.router.call(call.kind, call.name, call.input, ctx), cutOff]);
    } finally {
      clearTimeout(timer);
      this.#hardStops.delete(onHardStop);
    }
  }

  /**
   * Queue one result for posting; resolves once it is posted or given up. Results are sent by
   * one sender per session: the first goes out at once, and results that finish while a post is
   * in flight go together in the next one (no added latency, far fewer requests in a batch).
   */
  #post(call: Call, result: ToolResult): Promise<void> {
    const event: ToolResultParams | CustomToolResultParams =
      call.kind === "builtin"
        ? { type: "user.tool_result", tool_use_id: call.id, content: result.content, is_error: result.is_error }
        : { type: "user.custom_tool_result", custom_tool_use_id: call.id, content: result.content, is_error: result.is_error };
    return new Promise((done) => {
      this.#outbox.push({ call, event, done });
      if (!this.#sending) void this.#sendLoop();
    });
  }

  async #sendLoop(): Promise<void> {
    this.#sending = true;
    try {
      while (this.#outbox.length) {
        const batch = this.#outbox.splice(0, MAX_RESULTS_PER_POST);
        const outcome = await this.#send(batch);
        if (outcome === "rejected" && batch.length > 1) {
          // One bad result must not sink the others: post each alone.
          for (const one of batch) {
            if ((await this.#send([one])) === "gave_up") this.#keepUnposted(one.call);
            one.done();
          }
          continue;
        }
        if (outcome === "gave_up") for (const one of batch) this.#keepUnposted(one.call);
        for (const one of batch) one.done();
      }
    } finally {
      this.#sending = false;
    }
  }

  /** A result that could not be posted within the window: the next reconcile posts it again. */
  #keepUnposted(call: Call) {
    if (!this.#o.signal.aborted) this.#unposted.set(call.id, call);
  }

  /** POST results, retrying transient failures within the lease's TTL. */
  async #send(batch: Outgoing[]): Promise<"posted" | "rejected" | "gave_up"> {
    const ids = batch.map((b) => b.call.id);
    const windowMs = this.#o.sendWindowMs?.() ?? 300_000;
    const deadline = Date.now() + windowMs;
    const random = this.#o.random ?? Math.random;
    for (let attempt = 0; ; attempt++) {
      if (this.#o.signal.aborted) return "gave_up";
      try {
        await this.#poster.post(
          batch.map((b) => b.event),
          this.#o.signal,
        );
        for (const id of ids) this.#answered.add(id);
        return "posted";
      } catch (err) {
        if (this.#o.signal.aborted) return "gave_up";
        const status = (err as { status?: number }).status;
        const shouldRetry = err instanceof ResultPostError ? err.shouldRetry : undefined;
        if (shouldRetry === false || (shouldRetry === undefined && isFatal4xx(status))) {
          if (batch.length === 1) this.#log.error("result rejected; giving up on this call", { tool_use_id: ids[0], status, error: String(err) });
          return "rejected";
        }
        const wait = backoffMs(attempt, SEND_BACKOFF_BASE_MS, SEND_BACKOFF_CAP_MS, random);
        if (Date.now() + wait > deadline) {
          // The ledger keeps the results: the next reconcile re-posts them rather than re-running.
          this.#log.error("result not posted within the lease window", { tool_use_ids: ids, status, error: String(err) });
          return "gave_up";
        }
        this.#log.warn("posting result failed; retrying", { tool_use_ids: ids, status, attempt, wait_ms: wait });
        await sleep(wait, this.#o.signal).catch(() => {});
      }
    }
  }

  #armIdle() {
    this.#idleWanted = true;
    this.#maybeArm();
  }

  #disarmIdle() {
    this.#idleWanted = false;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  /** Arm the idle clock if a turn ended and nothing is held or running. */
  #maybeArm() {
    if (!this.#idleWanted || this.outstanding || this.#idleTimer || this.#end) return;
    if (this.#maxIdleMs <= 0) return;
    this.#idleTimer = setTimeout(() => this.#finish({ reason: "idle" }), this.#maxIdleMs);
  }
}

/** The call a result event answers. */
function answeredId(ev: UserToolResult | UserCustomToolResult): string {
  return ev.type === "user.tool_result" ? ev.tool_use_id : ev.custom_tool_use_id;
}

function endsTurn(ev: KnownEvent): boolean {
  if (ev.type !== "session.status_idle") return false;
  // Any stop reason but requires_action (even an unknown one) ends the turn.
  return (ev.stop_reason?.type ?? "end_turn") !== "requires_action";
}

function toCall(ev: AgentToolUse | AgentCustomToolUse): Call {
  return {
    id: ev.id,
    name: ev.name,
    input: ev.input,
    kind: ev.type === "agent.tool_use" ? "builtin" : "custom",
    threadId: ev.session_thread_id,
    permission: ev.type === "agent.tool_use" ? ev.evaluated_permission : "allow",
  };
}
