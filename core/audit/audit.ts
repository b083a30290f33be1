/**
 * The audit sink: one record per egress request (allowed, denied, or allowed in shadow mode),
 * tied to the session, the tool call and the rule that decided. Records never hold a secret:
 * credentials appear by name only.
 */

export interface AuditRecord {
  /** Unique per record. */
  id: string;
  /** ISO time the request reached the gateway. */
  time: string;
  sessionId: string;
  toolUseId?: string;
  tier: string;
  via: "fetch" | "proxy" | "connect" | "workers";
  method: string;
  host: string;
  port: number;
  /** Path without the query (queries can carry secrets). */
  path: string;
  decision: "allow" | "deny" | "shadow-deny";
  rule: string;
  reason: string;
  /** Upstream status, when a response came back. */
  status?: number;
  /** The address connected to, after the address check. */
  address?: string;
  bytesOut: number;
  bytesIn: number;
  durationMs: number;
  /** Credentials injected, by name. */
  credentials: string[];
  /** Occurrences of a secret redacted from the response. */
  redactions: number;
  /** Set when the request failed after the decision (upstream error, limit hit, timeout). */
  error?: string;
}

export interface AuditQuery {
  sessionId: string;
  /** Only records at or after this ISO time. */
  since?: string;
  limit?: number;
}

export interface AuditSink {
  /** Resolves once the record is durable in this sink. */
  write(record: AuditRecord): Promise<void>;
  /** Records of one session, oldest first. */
  query(q: AuditQuery): Promise<AuditRecord[]>;
}

/** Keeps records in memory, per session (tests, embedding, and as the default sink). */
export class MemoryAuditSink implements AuditSink {
  readonly #bySession = new Map<string, AuditRecord[]>();
  readonly #maxPerSession: number;
  constructor(opts: { maxPerSession?: number } = {}) {
    this.#maxPerSession = opts.maxPerSession ?? 10_000;
  }
  async write(record: AuditRecord): Promise<void> {
    let list = this.#bySession.get(record.sessionId);
    if (!list) this.#bySession.set(record.sessionId, (list = []));
    list.push(record);
    if (list.length > this.#maxPerSession) list.splice(0, list.length - this.#maxPerSession);
  }
  async query(q: AuditQuery): Promise<AuditRecord[]> {
    let list = this.#bySession.get(q.sessionId) ?? [];
    if (q.since) list = list.filter((r) => r.time >= q.since!);
    return q.limit ? list.slice(-q.limit) : [...list];
  }
}
