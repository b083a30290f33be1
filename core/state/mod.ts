export * from "./store.ts";
export { MemoryBlobStore, MemoryStore } from "./memory.ts";
export { KvBlobStore, KvStore, openKvStores, type KvLike } from "./kv-store.ts";
export { StoreLedger } from "./store-ledger.ts";
export { StoreAuditSink } from "./store-audit.ts";
export { SessionRecords, type SessionSummary, type ToolRecord, type WorkItemRecord } from "./session-records.ts";
export { loadWorkspace, pruneWorkspaceBlobs, saveWorkspace, WorkspaceConflictError, WorkspaceCorruptError, type SnapshotInfo } from "./workspace-store.ts";
