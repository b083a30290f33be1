// The work queue and lease state machine of spec §2/§3.
import { EmulatorHttpError, badRequest, notFound } from "./errors.ts";
import type { WorkObject, WorkState } from "./types.ts";
import { newId, nowStamp } from "./util.ts";

export const NO_HEARTBEAT = "NO_HEARTBEAT";
/** `workers_polling` counts worker ids seen within this window. */
const WORKER_WINDOW_MS = 30_000;
export const DEFAULT_RECLAIM_MS = 5_000;
const MAX_TTL_SECONDS = 3_600;

interface WorkRecord {
  work: WorkObject;
  /** Position in the queue (ms epoch of enqueue/requeue; ties broken by seq). */
  queuedAt: number;
  seq: number;
  /** Set while delivered by a poll but not acked ("pending"). */
  deliveredAt: number | null;
  /** Stored `last_heartbeat`; null = none (NO_HEARTBEAT matches). */
  lastHeartbeat: string | null;
  ttlSeconds: number;
  leaseTimer: ReturnType<typeof setTimeout> | null;
}

export interface WorkQueueHooks {
  /** Build the `secret` for one delivery (issues a fresh sessions token). */
  issueSecret(work: WorkObject): string;
  onLeaseLapse?(work: WorkObject): void;
  log?(line: Record<string, unknown>): void;
}

export interface PollOptions {
  blockMs?: number;
  reclaimOlderThanMs?: number;
  workerId?: string;
  signal?: AbortSignal;
}

export interface HeartbeatResult {
  type: "work_heartbeat";
  last_heartbeat: string;
  lease_extended: boolean;
  state: WorkState;
  ttl_seconds: number;
}

function copy(work: WorkObject): WorkObject {
  return { ...work, data: { ...work.data }, metadata: { ...work.metadata }, secret: null };
}

export class WorkQueue {
  readonly #items = new Map<string, WorkRecord>();
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #workers = new Map<string, Map<string, number>>();
  readonly #hooks: WorkQueueHooks;
  #defaultTtl: number;
  #seq = 0;
  #closed = false;
  deliveries = 0;
  leaseLapses = 0;

  constructor(defaultTtlSeconds: number, hooks: WorkQueueHooks) {
    this.#defaultTtl = defaultTtlSeconds;
    this.#hooks = hooks;
  }

  enqueue(environmentId: string, data: WorkObject["data"], metadata: Record<string, string> = {}): WorkObject {
    const work: WorkObject = {
      id: newId("work"),
      type: "work",
      environment_id: environmentId,
      data,
      state: "queued",
      created_at: nowStamp(),
      acknowledged_at: null,
      started_at: null,
      latest_heartbeat_at: null,
      stop_requested_at: null,
      stopped_at: null,
      metadata: { ...metadata },
      secret: null,
    };
    this.#items.set(work.id, {
      work,
      queuedAt: Date.now(),
      seq: this.#seq++,
      deliveredAt: null,
      lastHeartbeat: null,
      ttlSeconds: this.#defaultTtl,
      leaseTimer: null,
    });
    this.#hooks.log?.({ msg: "work enqueued", work_id: work.id, environment_id: environmentId, data_id: data.id });
    this.#notify(environmentId);
    return copy(work);
  }

  /** The record, or 404. With `environmentId`, the item must belong to it. */
  #record(workId: string, environmentId?: string): WorkRecord {
    const rec = this.#items.get(workId);
    if (!rec || (environmentId !== undefined && rec.work.environment_id !== environmentId)) {
      throw notFound(`work item ${workId} not found`);
    }
    return rec;
  }

  get(workId: string, environmentId?: string): WorkObject {
    return copy(this.#record(workId, environmentId).work);
  }

  has(workId: string): boolean {
    return this.#items.has(workId);
  }

  /** Work items of an environment, oldest first. */
  list(environmentId: string): WorkObject[] {
    return [...this.#items.values()]
      .filter((r) => r.work.environment_id === environmentId)
      .sort((a, b) => a.seq - b.seq)
      .map((r) => copy(r.work));
  }

  /** Work ids created for a session, oldest first. */
  idsForSession(sessionId: string): string[] {
    return [...this.#items.values()].filter((r) => r.work.data.id === sessionId).sort((a, b) => a.seq - b.seq).map((r) => r.work.id);
  }

  /** True when the session has a work item that is not stopped. */
  hasLiveWork(sessionId: string): boolean {
    for (const r of this.#items.values()) if (r.work.data.id === sessionId && r.work.state !== "stopped") return true;
    return false;
  }

  // ----- poll -----

  async poll(environmentId: string, opts: PollOptions): Promise<WorkObject | null> {
    if (opts.workerId) {
      let m = this.#workers.get(environmentId);
      if (!m) this.#workers.set(environmentId, (m = new Map()));
      m.set(opts.workerId, Date.now());
    }
    const reclaimMs = opts.reclaimOlderThanMs ?? DEFAULT_RECLAIM_MS;
    const deadline = Date.now() + (opts.blockMs ?? 0);
    for (;;) {
      const claimed = this.#tryClaim(environmentId, reclaimMs);
      if (claimed) return claimed;
      const now = Date.now();
      const remaining = deadline - now;
      if (remaining <= 0 || this.#closed || opts.signal?.aborted) return null;
      // Wake early when a pending item becomes reclaimable.
      let wait = remaining;
      for (const r of this.#items.values()) {
        if (r.work.environment_id === environmentId && r.work.state === "queued" && r.deliveredAt !== null) {
          wait = Math.min(wait, Math.max(1, r.deliveredAt + reclaimMs - now));
        }
      }
      await this.#wait(environmentId, wait, opts.signal);
    }
  }

  #tryClaim(environmentId: string, reclaimMs: number): WorkObject | null {
    const now = Date.now();
    const candidates = [...this.#items.values()]
      .filter(
        (r) =>
          r.work.environment_id === environmentId &&
          r.work.state === "queued" &&
          (r.deliveredAt === null || now - r.deliveredAt >= reclaimMs),
      )
      .sort((a, b) => a.queuedAt - b.queuedAt || a.seq - b.seq);
    const rec = candidates[0];
    if (!rec) return null;
    const redelivery = rec.deliveredAt !== null;
    rec.deliveredAt = now;
    this.deliveries++;
    this.#hooks.log?.({ msg: redelivery ? "work redelivered" : "work delivered", work_id: rec.work.id });
    const out = copy(rec.work);
    out.secret = this.#hooks.issueSecret(out);
    return out;
  }

  #wait(environmentId: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let set = this.#waiters.get(environmentId);
      if (!set) this.#waiters.set(environmentId, (set = new Set()));
      const waiters = set;
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      waiters.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  #notify(environmentId: string): void {
    const set = this.#waiters.get(environmentId);
    if (set) for (const w of [...set]) w();
  }

  // ----- ack / heartbeat / stop -----

  ack(environmentId: string, workId: string): WorkObject {
    const rec = this.#record(workId, environmentId);
    if (rec.work.state === "queued") {
      rec.work.state = "starting";
      rec.work.acknowledged_at = nowStamp();
      rec.deliveredAt = null;
      this.#armLease(rec);
      this.#hooks.log?.({ msg: "work acked", work_id: workId });
    } else if (rec.work.state === "stopped") {
      throw new EmulatorHttpError(409, "conflict_error", `work item ${workId} is stopped`, undefined, { "x-should-retry": "false" });
    }
    // Acking an item already starting/active is a no-op (idempotent).
    return copy(rec.work);
  }

  heartbeat(environmentId: string, workId: string, expected: string | undefined, desiredTtl?: number): HeartbeatResult {
    const rec = this.#record(workId, environmentId);
    const w = rec.work;
    if (w.state === "stopping" || w.state === "stopped") {
      // Graceful stop reaches the worker here: no CAS, no lease extension.
      return {
        type: "work_heartbeat",
        last_heartbeat: rec.lastHeartbeat ?? "",
        lease_extended: false,
        state: w.state,
        ttl_seconds: rec.ttlSeconds,
      };
    }
    if (expected === undefined) throw badRequest("expected_last_heartbeat is required");
    const stored = rec.lastHeartbeat ?? NO_HEARTBEAT;
    // A queued item has no holder: it must be polled and acked before a beat.
    if (w.state === "queued" || expected !== stored) {
      throw new EmulatorHttpError(
        412,
        "invalid_request_error",
        "heartbeat precondition failed: expected_last_heartbeat does not match",
        {
          error_code: "heartbeat_precondition_failed",
          current_state: {
            last_heartbeat: rec.lastHeartbeat,
            lease_extended: false,
            state: w.state,
            ttl_seconds: rec.ttlSeconds,
          },
        },
      );
    }
    if (desiredTtl !== undefined) rec.ttlSeconds = Math.min(Math.max(1, desiredTtl), MAX_TTL_SECONDS);
    const stamp = nowStamp();
    rec.lastHeartbeat = stamp;
    w.latest_heartbeat_at = stamp;
    if (w.state === "starting") {
      w.state = "active";
      w.started_at = stamp;
    }
    this.#armLease(rec);
    return { type: "work_heartbeat", last_heartbeat: stamp, lease_extended: true, state: w.state, ttl_seconds: rec.ttlSeconds };
  }

  stop(environmentId: string | undefined, workId: string, force: boolean): WorkObject {
    const rec = this.#record(workId, environmentId);
    const w = rec.work;
    if (w.state === "stopped") {
      throw new EmulatorHttpError(409, "conflict_error", `work item ${workId} is already stopped`, undefined, {
        "x-should-retry": "false",
      });
    }
    const now = nowStamp();
    w.stop_requested_at ??= now;
    // A queued item has nobody to notice a graceful stop: it stops at once.
    if (force || w.state === "queued") {
      this.#setStopped(rec, now);
    } else if (w.state !== "stopping") {
      w.state = "stopping";
    }
    this.#hooks.log?.({ msg: "work stop", work_id: workId, force, state: w.state });
    return copy(w);
  }

  #setStopped(rec: WorkRecord, stamp: string): void {
    rec.work.state = "stopped";
    rec.work.stopped_at = stamp;
    rec.deliveredAt = null;
    if (rec.leaseTimer) clearTimeout(rec.leaseTimer);
    rec.leaseTimer = null;
  }

  /** Another holder took the lease: the stored heartbeat changes. */
  steal(workId: string): void {
    const rec = this.#record(workId);
    const stamp = nowStamp();
    rec.lastHeartbeat = stamp;
    rec.work.latest_heartbeat_at = stamp;
    if (rec.work.state === "starting") rec.work.state = "active";
    this.#armLease(rec);
  }

  update(environmentId: string, workId: string, metadata: unknown): WorkObject {
    const rec = this.#record(workId, environmentId);
    if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
      throw badRequest("metadata must be an object", "invalid_metadata");
    }
    const next = { ...rec.work.metadata };
    for (const [k, v] of Object.entries(metadata)) {
      if (v === null) delete next[k];
      else if (typeof v === "string") next[k] = v;
      else throw badRequest(`metadata.${k} must be a string or null`, "invalid_metadata");
    }
    if (Object.keys(next).length > 16) throw badRequest("metadata holds at most 16 pairs", "invalid_metadata");
    rec.work.metadata = next;
    return copy(rec.work);
  }

  #armLease(rec: WorkRecord): void {
    if (rec.leaseTimer) clearTimeout(rec.leaseTimer);
    if (this.#closed) return;
    rec.leaseTimer = setTimeout(() => this.#lapse(rec), rec.ttlSeconds * 1000);
  }

  #lapse(rec: WorkRecord): void {
    rec.leaseTimer = null;
    const w = rec.work;
    this.leaseLapses++;
    if (w.state === "stopping") {
      // The holder went away during a graceful stop: finish it.
      this.#setStopped(rec, nowStamp());
    } else if (w.state === "starting" || w.state === "active") {
      // Requeue: a later poll delivers it again; the old holder's echo no longer matches.
      w.state = "queued";
      w.acknowledged_at = null;
      w.started_at = null;
      rec.lastHeartbeat = null;
      rec.deliveredAt = null;
      rec.ttlSeconds = this.#defaultTtl;
      this.#notify(w.environment_id);
    } else {
      return;
    }
    this.#hooks.log?.({ msg: "lease lapsed", work_id: w.id, state: w.state });
    this.#hooks.onLeaseLapse?.(copy(w));
  }

  stats(environmentId: string): Record<string, unknown> {
    let depth = 0;
    let pending = 0;
    let oldest: WorkRecord | null = null;
    for (const r of this.#items.values()) {
      if (r.work.environment_id !== environmentId || r.work.state !== "queued") continue;
      if (r.deliveredAt !== null) pending++;
      else depth++;
      if (!oldest || r.queuedAt < oldest.queuedAt) oldest = r;
    }
    const workers = this.#workers.get(environmentId);
    let polling: number | null = null;
    if (workers) {
      const cutoff = Date.now() - WORKER_WINDOW_MS;
      polling = 0;
      for (const [id, seen] of workers) {
        if (seen >= cutoff) polling++;
        else workers.delete(id);
      }
    }
    return {
      type: "work_queue_stats",
      depth,
      pending,
      oldest_queued_at: oldest ? new Date(oldest.queuedAt).toISOString() : null,
      workers_polling: polling,
    };
  }

  close(): void {
    this.#closed = true;
    for (const r of this.#items.values()) {
      if (r.leaseTimer) clearTimeout(r.leaseTimer);
      r.leaseTimer = null;
    }
    for (const env of this.#waiters.keys()) this.#notify(env);
  }
}
