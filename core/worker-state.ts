/**
 * A worker's durable state, composed from its config: the runtime's state store (Deno KV or
 * SQLite under `<state-dir>/state`, or memory when the runtime has none), the idempotency ledger
 * (`--ledger file` or `store`), the egress audit sink and the session records on the store, and
 * the retention sweep. Built once per worker process and shared by its sessions.
 */
import type { AuditSink } from "./audit/audit.ts";
import { ConfigError, type Config } from "./config.ts";
import type { Logger } from "./log.ts";
import type { Runtime, StateStores } from "./runtime.ts";
import type { Ledger } from "./session/ledger.ts";
import { MemoryBlobStore, MemoryStore } from "./state/memory.ts";
import { SessionRecords } from "./state/session-records.ts";
import { StoreAuditSink } from "./state/store-audit.ts";
import { StoreLedger } from "./state/store-ledger.ts";
import type { WorkerHooks } from "./worker/worker.ts";

/** How often the retention sweep runs while a worker is up (it also runs at start). */
export const RETENTION_SWEEP_MS = 60 * 60 * 1000;

export interface WorkerState {
  stores: StateStores;
  ledger: Ledger;
  audit: AuditSink;
  records: SessionRecords;
  /** Hooks that keep the session records, around the caller's own hooks. */
  recordingHooks(workerId: string, log: Logger, inner?: WorkerHooks): WorkerHooks;
  close(): Promise<void>;
}

type StateConfig = Pick<Config, "stateDir" | "ledger" | "ledgerFsync" | "retentionDays">;

export async function openWorkerState(runtime: Runtime, config: StateConfig, log?: Logger): Promise<WorkerState> {
  let stores: StateStores;
  if (runtime.openState) {
    try {
      stores = await runtime.openState(`${config.stateDir}/state`);
    } catch (e) {
      throw new ConfigError(`state store under ${config.stateDir}/state cannot be opened: ${e instanceof Error ? e.message : String(e)}`);
    }
  } else {
    log?.warn("this runtime has no durable state store: workspaces, records and audit are kept in memory only", { runtime: runtime.name });
    const store = new MemoryStore();
    const blobs = new MemoryBlobStore();
    stores = { store, blobs, close: async () => {} };
  }
  const { store, blobs } = stores;
  const ledger = config.ledger === "store" ? new StoreLedger(store, blobs) : runtime.openLedger(`${config.stateDir}/ledger`, { fsync: config.ledgerFsync });
  const records = new SessionRecords(store);
  const retentionMs = config.retentionDays * 86_400_000;
  const sweep = async () => {
    if (!retentionMs) return;
    try {
      const removed = await records.prune(retentionMs);
      if (removed.length) log?.info("retention: removed sessions not seen within the retention period", { sessions: removed.length, retention_days: config.retentionDays });
    } catch (e) {
      log?.warn("retention sweep failed", { error: e instanceof Error ? e.message : String(e) });
    }
  };
  await sweep();
  const timer = retentionMs ? setInterval(() => void sweep(), RETENTION_SWEEP_MS) : undefined;
  (timer as unknown as { unref?(): void } | undefined)?.unref?.();

  // Records are observability, not acknowledgements: written off the session's path, and a
  // failed write is logged, never fatal.
  const record = (log: Logger, what: string, p: Promise<unknown>) => void p.catch((e) => log.warn(`session records: ${what} failed`, { error: e instanceof Error ? e.message : String(e) }));
  return {
    stores,
    ledger,
    audit: new StoreAuditSink(store),
    records,
    recordingHooks: (workerId, log, inner) => ({
      ...inner,
      itemClaimed(info) {
        if (info.sessionId) record(log, "work item", records.itemClaimed(info.sessionId, info.work.id, workerId));
        inner?.itemClaimed?.(info);
      },
      result(info) {
        record(log, "tool", records.toolRan(info.sessionId, { toolUseId: info.id, name: info.name, kind: info.kind, ms: Math.round(info.ms * 1000) / 1000, isError: info.result.is_error, replayed: info.replayed }));
        inner?.result?.(info);
      },
      itemEnded(info) {
        if (info.sessionId) {
          const end = info.lease && info.lease.reason !== "released" ? `lease ${info.lease.reason}` : (info.runner?.reason ?? "ended");
          record(log, "work item end", records.itemEnded(info.sessionId, info.workId, info.stopped ? end : `${end} (not acknowledged)`));
        }
        inner?.itemEnded?.(info);
      },
    }),
    close: async () => {
      if (timer) clearInterval(timer);
      await stores.close();
    },
  };
}
