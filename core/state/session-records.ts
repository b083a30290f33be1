/**
 * What an operator needs to see about a session later, kept in the `Store` next to its ledger,
 * workspace and egress audit: the work items that served it (which worker, when, how each
 * ended) and every tool it ran with its timing. `prune` removes whole sessions not seen for the
 * retention period: records, tools, audit, ledger and workspace head (the workspace's chunks
 * are collected by `pruneWorkspaceBlobs` once nothing points to them).
 *
 * Keys:
 *   ["session", id]                  SessionSummary
 *   ["tools", id, "<ms>-<toolUseId>"]  ToolRecord
 *   ["audit", id, ...]               egress audit records (StoreAuditSink)
 *   ["ledger", id, toolUseId]        idempotency ledger (StoreLedger)
 *   ["workspace", id]                workspace head (workspace-store.ts)
 */
import type { Store, StoreValue } from "./store.ts";

export interface WorkItemRecord {
  workId: string;
  workerId: string;
  claimedAt: string;
  endedAt?: string;
  /** How it ended: the runner's reason ("idle", "terminated", "drained", ...) or an error. */
  end?: string;
}

export interface SessionSummary {
  sessionId: string;
  firstSeen: string;
  lastSeen: string;
  /** The most recent work items, oldest first (at most 100 kept). */
  workItems: WorkItemRecord[];
}

export interface ToolRecord {
  toolUseId: string;
  name: string;
  kind: string;
  ms: number;
  isError: boolean;
  /** Answered from the ledger after a crash or reconnect, not run again. */
  replayed: boolean;
  at: string;
}

/** The per-session prefixes `prune` removes. */
const SESSION_PREFIXES = ["tools", "audit", "ledger"] as const;
const MAX_WORK_ITEMS = 100;

export class SessionRecords {
  constructor(
    readonly store: Store,
    readonly now: () => number = Date.now,
  ) {}

  /** A work item for the session was claimed by `workerId`. */
  async itemClaimed(sessionId: string, workId: string, workerId: string): Promise<void> {
    await this.#update(sessionId, (s) => {
      s.workItems.push({ workId, workerId, claimedAt: this.#iso() });
      if (s.workItems.length > MAX_WORK_ITEMS) s.workItems.splice(0, s.workItems.length - MAX_WORK_ITEMS);
    });
  }

  /** The work item ended (`end`: why). */
  async itemEnded(sessionId: string, workId: string, end: string): Promise<void> {
    await this.#update(sessionId, (s) => {
      const item = [...s.workItems].reverse().find((w) => w.workId === workId);
      if (item) Object.assign(item, { endedAt: this.#iso(), end });
    });
  }

  async toolRan(sessionId: string, t: Omit<ToolRecord, "at">): Promise<void> {
    const at = this.#iso();
    // One write per call, off the call's path (the summary is updated per work item, not per call).
    await this.store.set(["tools", sessionId, `${String(this.now()).padStart(15, "0")}-${t.toolUseId}`], { ...t, at } as unknown as StoreValue);
  }

  async summary(sessionId: string): Promise<SessionSummary | null> {
    return ((await this.store.get(["session", sessionId]))?.value as unknown as SessionSummary) ?? null;
  }

  async tools(sessionId: string): Promise<ToolRecord[]> {
    const out: ToolRecord[] = [];
    for await (const e of this.store.list(["tools", sessionId])) out.push(e.value as unknown as ToolRecord);
    return out;
  }

  /** Every session recorded, most recently seen first. */
  async sessions(): Promise<SessionSummary[]> {
    const out: SessionSummary[] = [];
    for await (const e of this.store.list(["session"])) out.push(e.value as unknown as SessionSummary);
    return out.sort((a, b) => b.lastSeen.localeCompare(a.lastSeen));
  }

  /**
   * Remove every session last seen more than `retentionMs` ago, with its tools, audit, ledger
   * and workspace head. Returns the ids removed.
   */
  async prune(retentionMs: number): Promise<string[]> {
    const cutoff = new Date(this.now() - retentionMs).toISOString();
    const removed: string[] = [];
    for await (const e of this.store.list(["session"])) {
      const s = e.value as unknown as SessionSummary;
      if (s.lastSeen >= cutoff) continue;
      for (const prefix of SESSION_PREFIXES) {
        const keys: Array<readonly string[]> = [];
        for await (const x of this.store.list([prefix, s.sessionId])) keys.push(x.key);
        for (const k of keys) await this.store.delete(k);
      }
      await this.store.delete(["workspace", s.sessionId]);
      // Only if nobody touched it meanwhile: a session seen again survives.
      await this.store.delete(["session", s.sessionId], { expectVersion: e.version });
      removed.push(s.sessionId);
    }
    return removed;
  }

  #iso(): string {
    return new Date(this.now()).toISOString();
  }

  /** Read-modify-write of the summary with compare-and-set (several workers may record at once). */
  async #update(sessionId: string, change: (s: SessionSummary) => void): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const cur = await this.store.get(["session", sessionId]);
      const s: SessionSummary = cur ? structuredClone(cur.value as unknown as SessionSummary) : { sessionId, firstSeen: this.#iso(), lastSeen: this.#iso(), workItems: [] };
      change(s);
      s.lastSeen = this.#iso();
      const r = await this.store.set(["session", sessionId], s as unknown as StoreValue, { expectVersion: cur?.version ?? null });
      if (r.ok) return;
    }
    throw new Error(`session records: ${sessionId} kept changing under 20 attempts to update it`);
  }
}
