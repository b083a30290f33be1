/**
 * The idempotency ledger: a tool_use id is recorded as started before its tool runs, and its
 * result is recorded before the result is posted. After a crash or a reconnect, a recorded result
 * is re-posted instead of re-run, and a start with no result is reported as interrupted (unless
 * the tool is declared idempotent). The durable implementations live with the runtimes; the
 * in-memory one here serves tests and embedders who accept losing it with the process.
 */
import type { ToolResult } from "../router/mod.ts";

export type LedgerEntry = { state: "started" } | { state: "done"; result: ToolResult };

/** One session's ledger, loaded when the session is claimed (one holder at a time: the lease). */
export interface SessionLedger {
  get(toolUseId: string): LedgerEntry | undefined;
  /** Durable before it resolves. */
  started(toolUseId: string): Promise<void>;
  /** Durable before it resolves. */
  finished(toolUseId: string, result: ToolResult): Promise<void>;
  close(): Promise<void>;
}

export interface Ledger {
  open(sessionId: string): Promise<SessionLedger>;
}

export class MemoryLedger implements Ledger {
  readonly #sessions = new Map<string, Map<string, LedgerEntry>>();
  async open(sessionId: string): Promise<SessionLedger> {
    let entries = this.#sessions.get(sessionId);
    if (!entries) this.#sessions.set(sessionId, (entries = new Map()));
    const map = entries;
    return {
      get: (id) => map.get(id),
      started: async (id) => void map.set(id, { state: "started" }),
      finished: async (id, result) => void map.set(id, { state: "done", result }),
      close: async () => {},
    };
  }
}
