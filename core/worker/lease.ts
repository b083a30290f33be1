/**
 * The work lease (spec §2.3, §3, §7.3): optimistic concurrency on `last_heartbeat`.
 * The first beat claims the lease with the NO_HEARTBEAT sentinel; each later beat echoes,
 * byte for byte, the `last_heartbeat` of the previous success. The lease ends when:
 * - the server says `stopping`/`stopped` or `lease_extended:false` ("stop": still ours, so the
 *   item is force-stopped at teardown);
 * - the server answers 412 ("lost": another worker holds it now; never stop the item);
 * - another fatal 4xx ("rejected");
 * - no beat succeeded for longer than the TTL ("assumed_lost": treat as lost);
 * - the holder releases it ("released").
 */
import type Anthropic from "@anthropic-ai/sdk";
import { ApiErrorBodySchema, HeartbeatPreconditionDetailsSchema, HeartbeatResponseSchema, isFatal4xx, NO_HEARTBEAT } from "../contract/mod.ts";
import type { Logger } from "../log.ts";

/** Interval before the first answer, and the ceiling afterwards. */
export const HEARTBEAT_DEFAULT_MS = 30_000;
/** The floor of the interval, however short the TTL (half a 1 s TTL still fits). */
export const HEARTBEAT_MIN_MS = 250;
/** TTL assumed until the server states one. */
export const HEARTBEAT_TTL_DEFAULT_MS = 90_000;

export type LeaseEndReason = "stop" | "lost" | "rejected" | "assumed_lost" | "released";

export interface LeaseEnd {
  reason: LeaseEndReason;
  detail?: string;
}

export interface LeaseOptions {
  client: Anthropic;
  /** Headers that authenticate this item's calls (the sessions token), added to each beat. */
  headers?: Record<string, string>;
  environmentId: string;
  workId: string;
  log: Logger;
  /** Optional `desired_ttl_seconds` to ask for. */
  desiredTtlSeconds?: number;
}

/** Interval for a stated TTL: half of it, between 250 ms and 30 s. */
export function heartbeatIntervalMs(ttlSeconds: number): number {
  return Math.max(HEARTBEAT_MIN_MS, Math.min((ttlSeconds * 1000) / 2, HEARTBEAT_DEFAULT_MS));
}

export class Lease {
  readonly #o: LeaseOptions;
  #last: string = NO_HEARTBEAT;
  #ttlMs = HEARTBEAT_TTL_DEFAULT_MS;
  #intervalMs = HEARTBEAT_DEFAULT_MS;
  #lastSuccess = Date.now();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inflight: AbortController | undefined;
  #end: LeaseEnd | undefined;
  readonly #ac = new AbortController();
  #firstResolve!: (ok: boolean) => void;
  /** Resolves true after the first accepted beat, false if the lease ended before one. */
  readonly claimed: Promise<boolean>;

  constructor(opts: LeaseOptions) {
    this.#o = opts;
    this.claimed = new Promise((r) => (this.#firstResolve = r));
  }

  /** Aborts when the lease ends, for any reason; `reason` is the {@link LeaseEnd}. */
  get signal(): AbortSignal {
    return this.#ac.signal;
  }
  get ended(): LeaseEnd | undefined {
    return this.#end;
  }
  /** The TTL the server enforces now: how long a result may be retried. */
  get ttlMs(): number {
    return this.#ttlMs;
  }
  /** True when the item belongs to someone else now: it must not be stopped by us. */
  get lost(): boolean {
    return this.#end?.reason === "lost" || this.#end?.reason === "assumed_lost";
  }

  /** Beat at once (claiming the lease) and then on the interval. */
  start(): void {
    this.#lastSuccess = Date.now();
    void this.#beat();
  }

  /** Stop heartbeating (teardown). The item is left to the caller. */
  release(): void {
    this.#finish({ reason: "released" });
  }

  #finish(end: LeaseEnd) {
    if (this.#end) return;
    this.#end = end;
    clearTimeout(this.#timer);
    this.#inflight?.abort();
    this.#firstResolve(false);
    this.#ac.abort(end);
  }

  #failures = 0;

  #schedule() {
    if (this.#end) return;
    // After a transient failure, retry sooner than the full interval (doubling from the floor).
    const delay = this.#failures ? Math.min(this.#intervalMs, HEARTBEAT_MIN_MS * 2 ** (this.#failures - 1)) : this.#intervalMs;
    this.#timer = setTimeout(() => void this.#beat(), delay);
  }

  async #beat(): Promise<void> {
    if (this.#end) return;
    const ac = new AbortController();
    this.#inflight = ac;
    // A hung beat is cut off at the current interval so the next one can run.
    const cutoff = setTimeout(() => ac.abort(new Error("heartbeat timed out")), this.#intervalMs);
    try {
      const raw = await this.#o.client.beta.environments.work.heartbeat(
        this.#o.workId,
        {
          environment_id: this.#o.environmentId,
          expected_last_heartbeat: this.#last,
          ...(this.#o.desiredTtlSeconds ? { desired_ttl_seconds: this.#o.desiredTtlSeconds } : {}),
        },
        { signal: ac.signal, maxRetries: 0, headers: this.#o.headers },
      );
      if (this.#end) return;
      const parsed = HeartbeatResponseSchema.safeParse(raw);
      if (!parsed.success) {
        this.#o.log.warn("malformed heartbeat answer; will retry", { issue: parsed.error.issues[0]?.message });
        this.#failures++;
        return this.#checkAssumedLost();
      }
      const hb = parsed.data;
      this.#failures = 0;
      this.#last = hb.last_heartbeat;
      this.#lastSuccess = Date.now();
      if (hb.ttl_seconds > 0) {
        this.#ttlMs = hb.ttl_seconds * 1000;
        this.#intervalMs = heartbeatIntervalMs(hb.ttl_seconds);
      }
      if (hb.state === "stopping" || hb.state === "stopped") {
        return this.#finish({ reason: "stop", detail: `work item is ${hb.state}` });
      }
      if (!hb.lease_extended) return this.#finish({ reason: "stop", detail: "lease not extended" });
      this.#firstResolve(true);
    } catch (err) {
      if (this.#end) return;
      const status = (err as { status?: number }).status;
      if (status === 412) {
        // The SDK's APIError keeps the parsed body as `.error`: the envelope, then its details.
        const body = ApiErrorBodySchema.safeParse((err as { error?: unknown }).error);
        const details = HeartbeatPreconditionDetailsSchema.safeParse(body.success ? body.data.error.details : undefined);
        this.#o.log.warn("lease lost: another worker holds this work item", {
          current_state: details.success ? details.data.current_state : undefined,
          ...(details.success ? {} : { note: "412 without heartbeat_precondition_failed details" }),
        });
        return this.#finish({ reason: "lost", detail: "heartbeat precondition failed (412)" });
      }
      if (isFatal4xx(status)) {
        this.#o.log.error("heartbeat rejected", { status, error: String(err) });
        return this.#finish({ reason: "rejected", detail: `heartbeat answered ${status}` });
      }
      this.#failures++;
      this.#o.log.warn("heartbeat failed; will retry", { status, error: err instanceof Error ? err.message : String(err) });
      return this.#checkAssumedLost();
    } finally {
      clearTimeout(cutoff);
      this.#inflight = undefined;
      this.#schedule();
    }
  }

  #checkAssumedLost() {
    if (Date.now() - this.#lastSuccess > this.#ttlMs) {
      this.#finish({ reason: "assumed_lost", detail: `no accepted heartbeat for ${Math.round(this.#ttlMs / 1000)}s` });
    }
  }
}
