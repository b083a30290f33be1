/**
 * The egress audit sink on a `Store`: `["audit", session, <time>-<id>]`, so a session's records
 * list in time order and travel with the session to any worker sharing the store.
 */
import type { AuditQuery, AuditRecord, AuditSink } from "../audit/audit.ts";
import type { Store, StoreValue } from "./store.ts";

export class StoreAuditSink implements AuditSink {
  constructor(readonly store: Store) {}

  async write(record: AuditRecord): Promise<void> {
    await this.store.set(["audit", record.sessionId, `${record.time}-${record.id}`], record as unknown as StoreValue);
  }

  async query(q: AuditQuery): Promise<AuditRecord[]> {
    const out: AuditRecord[] = [];
    for await (const e of this.store.list<StoreValue>(["audit", q.sessionId])) {
      const r = e.value as unknown as AuditRecord;
      if (!q.since || r.time >= q.since) out.push(r);
    }
    return q.limit ? out.slice(-q.limit) : out;
  }
}
