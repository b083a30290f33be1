/**
 * The environment worker: polls a self-hosted environment for work, serves up to
 * `maxSessions` work items at once, and for each one holds the lease, runs the session, and
 * tears down (spec §7). Runtime-neutral: everything goes through the SDK on `fetch`.
 *
 * Credentials: polling and ack use the environment key; every per-item call uses the sessions
 * token decoded from the item's `secret` (the environment key only as a fallback). Neither ever
 * reaches a tool: tools get a context with ids and a signal, nothing else.
 */
import Anthropic from "@anthropic-ai/sdk";
import { decodeWorkSecret, isFatal4xx, isSessionWork, isTerminated, mcpServerHosts, SessionSchema, WorkSchema, type Work } from "../contract/mod.ts";
import { globalSecrets, silentLogger, type Logger } from "../log.ts";
import type { Router, ToolResult, CallKind } from "../router/mod.ts";
import { MemoryLedger, type Ledger } from "../session/ledger.ts";
import { SessionRunner, type RunnerEnd } from "../session/runner.ts";
import { AbortGroup, backoffMs, isAbortError, jitterBetween, sleep } from "../timing.ts";
import { Lease, type LeaseEnd } from "./lease.ts";

/** Extra pollers started while a burst of items is being claimed (they stop when it ends). */
export const POLL_BURST_HELPERS = 7;
/** The API's cap on long-poll blocking. */
export const POLL_BLOCK_MS = 999;
/** An empty poll that came back faster than this did not block: pause before the next. */
export const POLL_FAST_EMPTY_MS = 200;
/** Pause after an empty poll that did not block: uniform in this range. */
export const POLL_EMPTY_PAUSE_MS: [number, number] = [250, 1_000];
/** Poll error backoff: 1 s doubling, capped at 60 s, jittered; reset on success. */
export const POLL_BACKOFF_BASE_MS = 1_000;
export const POLL_BACKOFF_CAP_MS = 60_000;
/** How long in-flight tools may finish at teardown and at shutdown. */
export const DRAIN_TIMEOUT_MS = 30_000;
/** Default number of work items served at once. */
export const MAX_SESSIONS = 64;

/** What a session's tools are, provisioned when its item is claimed and closed at teardown. */
export interface SessionTools {
  router: Router;
  /** A label for the transcript, e.g. the sandbox tier. */
  label?: string;
  /**
   * Make the session's state durable (its workspace snapshot) when the work item ends, before the
   * item is acknowledged: if this throws, the item is left unacknowledged so it is retried.
   */
  persist?(): Promise<void>;
  close?(): Promise<void> | void;
}

export interface ProvisionContext {
  sessionId: string;
  workId: string;
  log: Logger;
  /** Hosts of the agent's MCP servers (`host` or `host:port`), for `allow_mcp_servers`. */
  mcpServerHosts: string[];
}

export interface WorkerOptions {
  environmentId: string;
  /** The environment key. Never logged, never handed to a tool. */
  environmentKey: string;
  /** API base URL. Default: the SDK's (`ANTHROPIC_BASE_URL`, else https://api.anthropic.com). */
  baseURL?: string;
  /** Sent as `Anthropic-Worker-ID`. Default: `deft-<uuid>`. */
  workerId?: string;
  /** Work items served at once. Default {@link MAX_SESSIONS}. */
  maxSessions?: number;
  /** Tools for a claimed session. */
  provision: (ctx: ProvisionContext) => SessionTools | Promise<SessionTools>;
  /** Idempotency ledger. Default: in memory (lost with the process). */
  ledger?: Ledger;
  log?: Logger;
  maxIdleMs?: number;
  toolTimeoutMs?: number;
  drainTimeoutMs?: number;
  pollBlockMs?: number;
  /** Passed as `reclaim_older_than_ms` on poll. Default: the server's (5 s). */
  reclaimOlderThanMs?: number;
  /** A custom fetch for every API call (tests, proxies). */
  fetch?: typeof fetch;
  /** SDK retries per call (default 2, the SDK's). */
  maxRetries?: number;
  /** Observers for the live transcript and metrics. */
  hooks?: WorkerHooks;
  random?: () => number;
}

export interface WorkerHooks {
  itemClaimed?(info: { work: Work; sessionId?: string }): void;
  sessionStarted?(info: { sessionId: string; workId: string; label?: string }): void;
  event?(info: { sessionId: string; event: { type: string; [k: string]: unknown } }): void;
  result?(info: { sessionId: string; id: string; name: string; kind: CallKind; result: ToolResult; ms: number; replayed: boolean }): void;
  itemEnded?(info: { workId: string; sessionId?: string; runner?: RunnerEnd; lease?: LeaseEnd; stopped: boolean }): void;
}

/** A configuration or credential problem that retrying will not fix. */
export class WorkerFatalError extends Error {
  override name = "WorkerFatalError";
  constructor(
    message: string,
    readonly code: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

interface Active {
  work: Work;
  lease?: Lease;
  runner?: SessionRunner;
  done: Promise<void>;
}

export class EnvironmentWorker {
  readonly #o: WorkerOptions;
  readonly #log: Logger;
  readonly #root: Anthropic;
  readonly #ledger: Ledger;
  readonly workerId: string;
  readonly #active = new Map<string, Active>();
  readonly #slotWaiters: Array<() => void> = [];
  /** Aborts the poll loops' requests and pauses (shutdown begins). */
  readonly #stopPolling = new AbortGroup();
  /** Aborts every session (shutdown past the drain timeout). */
  readonly #hardStop = new AbortGroup();
  #shuttingDown = false;
  #running: Promise<void> | undefined;

  constructor(opts: WorkerOptions) {
    if (!opts.environmentId) throw new WorkerFatalError("environmentId is required (ANTHROPIC_ENVIRONMENT_ID)", "config");
    if (!opts.environmentKey) throw new WorkerFatalError("environmentKey is required (ANTHROPIC_ENVIRONMENT_KEY)", "config");
    this.#o = opts;
    this.#log = opts.log ?? silentLogger;
    this.#ledger = opts.ledger ?? new MemoryLedger();
    this.workerId = opts.workerId ?? `deft-${crypto.randomUUID()}`;
    globalSecrets.add(opts.environmentKey);
    this.#root = new Anthropic({
      authToken: opts.environmentKey,
      apiKey: null,
      ...(opts.baseURL ? { baseURL: opts.baseURL } : {}),
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
      ...(opts.maxRetries !== undefined ? { maxRetries: opts.maxRetries } : {}),
      defaultHeaders: { "x-stainless-helper": "deft-worker" },
    });
  }

  /** Work items being served now. */
  get activeCount(): number {
    return this.#active.size;
  }

  /**
   * Poll and serve until {@link shutdown} (or `signal`). Rejects with {@link WorkerFatalError}
   * on a configuration or credential problem.
   */
  run(signal?: AbortSignal): Promise<void> {
    signal?.addEventListener("abort", () => void this.shutdown(), { once: true });
    this.#running ??= this.#pollLoop();
    return this.#running;
  }

  /**
   * Graceful shutdown: stop polling, stop taking new tool calls, let in-flight calls finish and
   * post (up to the drain timeout), then end every session. Items whose session is at rest are
   * force-stopped; items with unanswered calls are left for another worker to reclaim.
   */
  async shutdown(drainTimeoutMs = this.#o.drainTimeoutMs ?? DRAIN_TIMEOUT_MS): Promise<void> {
    if (!this.#shuttingDown) {
      this.#shuttingDown = true;
      this.#log.info("shutting down: draining in-flight tools", { active: this.#active.size, drain_timeout_ms: drainTimeoutMs });
      this.#stopPolling.abort(new Error("shutdown"));
      const drained = Promise.allSettled([...this.#active.values()].map((a) => a.runner?.drain()));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), drainTimeoutMs)));
      if ((await Promise.race([drained, timedOut])) === "timeout") {
        this.#log.warn("drain timeout reached; aborting in-flight tools", { active: this.#active.size });
      }
      clearTimeout(timer);
      this.#hardStop.abort(new Error("shutdown"));
    }
    await Promise.allSettled([...this.#active.values()].map((a) => a.done));
    await this.#running?.catch(() => {});
  }

  async #pollLoop(): Promise<void> {
    const max = Math.max(1, this.#o.maxSessions ?? MAX_SESSIONS);
    this.#log.info("worker started", { environment_id: this.#o.environmentId, worker_id: this.workerId, max_sessions: max });
    try {
      await this.#poller(true, max);
    } finally {
      this.#stopPolling.abort();
    }
    await Promise.allSettled([...this.#active.values()].map((a) => a.done));
  }

  /** Slots taken by polls in flight, so that concurrent pollers never overshoot maxSessions. */
  #reserved = 0;
  #helpers = 0;

  /**
   * One poll loop. The primary long-polls for as long as the worker runs. When it claims an
   * item, a burst may be queued behind it: it starts up to {@link POLL_BURST_HELPERS} helpers
   * that poll without blocking and stop at the first empty answer, so a burst of sessions is
   * claimed in parallel while an idle worker keeps a single long poll open.
   */
  async #poller(primary: boolean, max: number): Promise<void> {
    const random = this.#o.random ?? Math.random;
    let failures = 0;
    while (!this.#shuttingDown) {
      if (this.#active.size + this.#reserved >= max) {
        if (!primary) return;
        await new Promise<void>((r) => this.#slotWaiters.push(r));
        continue;
      }
      this.#reserved++;
      const started = Date.now();
      let work: Work | undefined;
      try {
        work = await this.#poll(primary ? (this.#o.pollBlockMs ?? POLL_BLOCK_MS) : 1);
        failures = 0;
      } catch (err) {
        this.#reserved--;
        if (this.#shuttingDown || !primary) return;
        const status = (err as { status?: number }).status;
        if (isFatal4xx(status)) throw fatalFromPoll(err, status!, this.#o.environmentId);
        const wait = backoffMs(failures++, POLL_BACKOFF_BASE_MS, POLL_BACKOFF_CAP_MS, random);
        this.#log.warn("poll failed; backing off", { status, error: errText(err), wait_ms: wait });
        await this.#untilShutdown((signal) => sleep(wait, signal)).catch(() => {});
        continue;
      }
      if (!work) {
        this.#reserved--;
        if (!primary) return;
        if (Date.now() - started < POLL_FAST_EMPTY_MS) {
          await this.#untilShutdown((signal) => sleep(jitterBetween(...POLL_EMPTY_PAUSE_MS, random), signal)).catch(() => {});
        }
        continue;
      }
      // Redelivered while we still serve it: only possible once our lease has ended (it
      // lapsed, or was taken and lapsed again). Claim it anew once the old handler is done.
      const acked = !(this.#active.has(work.id) && this.#active.get(work.id)?.lease?.ended === undefined) && (await this.#ack(work));
      this.#reserved--;
      if (!acked) continue;
      this.#serve(work);
      while (primary && this.#helpers < POLL_BURST_HELPERS && this.#active.size + this.#reserved < max && !this.#shuttingDown) {
        this.#helpers++;
        void this.#poller(false, max)
          .catch(() => {})
          .finally(() => this.#helpers--);
      }
    }
  }

  /** Run `fn` with a signal that aborts when polling stops. */
  async #untilShutdown<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const ac = this.#stopPolling.join();
    try {
      return await fn(ac.signal);
    } finally {
      this.#stopPolling.release(ac);
    }
  }

  async #poll(blockMs: number): Promise<Work | undefined> {
    const raw = await this.#untilShutdown((signal) => this.#root.beta.environments.work.poll(
      this.#o.environmentId,
      {
        block_ms: blockMs,
        "Anthropic-Worker-ID": this.workerId,
        ...(this.#o.reclaimOlderThanMs !== undefined ? { reclaim_older_than_ms: this.#o.reclaimOlderThanMs } : {}),
      },
      { signal },
    ));
    if (raw == null || (typeof raw === "object" && Object.keys(raw).length === 0)) return undefined;
    const parsed = WorkSchema.safeParse(raw);
    if (!parsed.success) {
      this.#log.error("poll returned a malformed work item; skipping it", { issue: parsed.error.issues[0]?.message, work_id: (raw as { id?: unknown }).id });
      return undefined;
    }
    return parsed.data;
  }

  async #ack(work: Work): Promise<boolean> {
    try {
      await this.#untilShutdown((signal) => this.#root.beta.environments.work.ack(work.id, { environment_id: this.#o.environmentId }, { signal }));
      return true;
    } catch (err) {
      // Unacked, the item is delivered again after reclaim_older_than_ms.
      this.#log.warn("ack failed; the item will be redelivered", { work_id: work.id, status: (err as { status?: number }).status, error: errText(err) });
      return false;
    }
  }

  #serve(work: Work) {
    const previous = this.#active.get(work.id)?.done;
    const entry: Active = { work, done: Promise.resolve() };
    this.#active.set(work.id, entry);
    entry.done = (async () => {
      await previous;
      await this.#handle(work, entry);
    })()
      .catch((err) => this.#log.error("work item failed", { work_id: work.id, error: errText(err) }))
      .finally(() => {
        if (this.#active.get(work.id) === entry) this.#active.delete(work.id);
        this.#slotWaiters.shift()?.();
      });
  }

  async #handle(work: Work, entry: Active): Promise<void> {
    const sessionId = isSessionWork(work) ? work.data.id : undefined;
    const log = this.#log.child({ work_id: work.id, ...(sessionId ? { session_id: sessionId } : {}) });
    this.#o.hooks?.itemClaimed?.({ work, sessionId });
    const secret = decodeWorkSecret(work.secret);
    if (work.secret && !secret) log.warn("work secret could not be decoded; using the environment key", {});
    const token = secret?.sessions_token;
    globalSecrets.add(token);
    // Per-item calls carry the sessions token as a per-request header on the one shared client
    // (a client per item cost ~7 KiB and ~0.2 ms to build, times every live session).
    const client = this.#root;
    const headers = token ? { authorization: `Bearer ${token}` } : undefined;
    const lease = new Lease({ client, headers, environmentId: this.#o.environmentId, workId: work.id, log });
    entry.lease = lease;
    lease.start(); // before anything slow: the lease is the only thing keeping the item ours
    let runnerEnd: RunnerEnd | undefined;
    let tools: SessionTools | undefined;
    let leaveForReclaim = false;
    let provisionFailed = false;
    const hard = this.#hardStop.join();
    try {
      if (!sessionId) {
        await lease.claimed; // a healthcheck: ack, one beat, force-stop
        return;
      }
      // A graceful stop (stopping/stopped, lease not extended) drains: in-flight calls finish and
      // post. Losing the lease aborts at once: the item is someone else's now.
      lease.signal.addEventListener(
        "abort",
        () => {
          if (lease.ended?.reason === "stop" && entry.runner) void entry.runner.drain();
          else hard.abort(new Error(`lease ended: ${lease.ended?.reason}`));
        },
        { once: true },
      );
      const signal = hard.signal;
      const [claimed, rawSession] = await Promise.all([lease.claimed, client.beta.sessions.retrieve(sessionId, {}, { signal, headers })]);
      if (!claimed) return;
      const session = SessionSchema.safeParse(rawSession);
      if (!session.success) throw new Error(`session ${sessionId} is malformed: ${session.error.issues[0]?.message}`);
      if (isTerminated(session.data)) {
        log.info("session already terminated; nothing to do", {});
        return;
      }
      try {
        tools = await this.#o.provision({ sessionId, workId: work.id, log, mcpServerHosts: mcpServerHosts(session.data) });
      } catch (err) {
        provisionFailed = true; // e.g. the workspace could not be restored: never run tools on a blank one
        throw err;
      }
      const ledger = await this.#ledger.open(sessionId);
      const hooks = this.#o.hooks;
      const runner = new SessionRunner({
        client,
        headers,
        sessionId,
        router: tools.router,
        ledger,
        log,
        signal,
        maxIdleMs: this.#o.maxIdleMs,
        toolTimeoutMs: this.#o.toolTimeoutMs,
        sendWindowMs: () => lease.ttlMs,
        random: this.#o.random,
        onEvent: hooks?.event ? (event) => hooks.event!({ sessionId, event }) : undefined,
        onResult: hooks?.result ? (r) => hooks.result!({ sessionId, ...r }) : undefined,
      });
      entry.runner = runner;
      hooks?.sessionStarted?.({ sessionId, workId: work.id, label: tools.label });
      if (this.#shuttingDown) void runner.drain();
      try {
        runnerEnd = await runner.run();
        log.info("session runner ended", { reason: runnerEnd.reason, detail: runnerEnd.detail });
        await settleWithin(runner.settled(), this.#o.drainTimeoutMs ?? DRAIN_TIMEOUT_MS);
        // Shut down mid-turn: leave the item so another worker reclaims it when the lease lapses.
        leaveForReclaim = this.#shuttingDown && !lease.ended && runnerEnd.reason === "drained" && !runner.atRest;
      } finally {
        await ledger.close();
      }
    } catch (err) {
      if (!(isAbortError(err) && (lease.ended || this.#hardStop.aborted))) throw err;
    } finally {
      this.#hardStop.release(hard);
      lease.release();
      let stopped = false;
      // The session's state is made durable before the item is acknowledged: a session whose
      // workspace could not be restored or saved is not done, and is left to be retried.
      let durable = !provisionFailed;
      if (tools?.persist) {
        try {
          await tools.persist();
        } catch (err) {
          durable = false;
          log.error("saving the session's state failed", { error: errText(err) });
        }
      }
      if (lease.lost) log.warn("lease lost; leaving the work item to its new holder", { lease: lease.ended });
      else if (leaveForReclaim) log.info("shutdown with calls outstanding; leaving the item to be reclaimed", {});
      else if (!durable) log.error("the session's state is not durable; leaving the work item unacknowledged so that it is retried", {});
      else stopped = await this.#forceStop(headers, work.id, log);
      try {
        await tools?.close?.();
      } catch (err) {
        log.warn("closing session tools failed", { error: errText(err) });
      }
      globalSecrets.delete(token);
      this.#o.hooks?.itemEnded?.({ workId: work.id, sessionId, runner: runnerEnd, lease: lease.ended, stopped });
    }
  }

  async #forceStop(headers: Record<string, string> | undefined, workId: string, log: Logger): Promise<boolean> {
    try {
      await this.#root.beta.environments.work.stop(workId, { environment_id: this.#o.environmentId, force: true }, { headers });
      return true;
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (status === 409) return true; // already stopped
      log.warn("force-stop failed", { status, error: errText(err) });
      return false;
    }
  }
}

async function settleWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([p, new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function fatalFromPoll(err: unknown, status: number, environmentId: string): WorkerFatalError {
  const detail = errText(err);
  switch (status) {
    case 401:
      return new WorkerFatalError(
        `the API rejected the environment key (401). Check ANTHROPIC_ENVIRONMENT_KEY: it must be the key of environment ${environmentId}, not an API key. (${detail})`,
        "unauthorized",
        status,
      );
    case 403:
      return new WorkerFatalError(
        `the environment key may not poll environment ${environmentId} (403). Check that ANTHROPIC_ENVIRONMENT_ID and ANTHROPIC_ENVIRONMENT_KEY belong together. (${detail})`,
        "forbidden",
        status,
      );
    case 404:
      return new WorkerFatalError(
        `environment ${environmentId} was not found (404). Check ANTHROPIC_ENVIRONMENT_ID and ANTHROPIC_BASE_URL. (${detail})`,
        "not_found",
        status,
      );
    default:
      return new WorkerFatalError(`polling for work failed with ${status}; retrying will not help. (${detail})`, "rejected", status);
  }
}
