/**
 * What a claimed session gets: a workspace, the standard toolset over it, and, when the runtime
 * hosts an isolate tier, a sandbox in that tier with the `execute` tool. `execute` is not part of
 * `agent_toolset_20260401`, so the agent declares it as a custom tool (`deft tools --json` prints
 * the declaration) and its calls arrive as `agent.custom_tool_use`. The composition root of
 * sandboxes: the worker calls `provision` per session; the pool of isolates is shared by the
 * worker's sessions (each isolate runs one snippet and is discarded, so none carries state).
 */
import { IsolatePool, IsolateSandbox } from "../isolates/isolate-sandbox.ts";
import type { IsolateHost } from "../isolates/protocol.ts";
import { executeTool } from "../tools/execute-tool.ts";
import { standardToolset } from "../tools/standard-toolset.ts";
import { createWorkspaceFs } from "../tools/workspace-fs.ts";
import { ConfigError, type Config } from "./config.ts";
import { Router } from "./router/router.ts";
import type { Tool } from "./router/tool.ts";
import type { Runtime } from "./runtime.ts";
import type { SessionTools } from "./worker/worker.ts";
import type { Egress } from "./egress.ts";
import type { Logger } from "./log.ts";
import type { StateStores } from "./runtime.ts";
import { loadWorkspace, saveWorkspace, WorkspaceConflictError, type SnapshotInfo } from "./state/workspace-store.ts";

/** How often a workspace whose save failed is tried again. */
export const UNSAVED_RETRY_MS = 5_000;
import { callServiceTool } from "../tools/call-service-tool.ts";

export interface Provisioner {
  /** e.g. "deno-subprocess (isolate) on node", or "workspace tools only on node". */
  readonly label: string;
  /** Restores the session's workspace (when persisted) before returning: no tool runs on a blank one. */
  provision(ctx: { sessionId: string; mcpServerHosts?: readonly string[]; log?: Logger }): Promise<SessionTools>;
  close(): Promise<void>;
}

type SandboxConfig = Pick<Config, "sandbox" | "isolateMemoryMib" | "isolatePool" | "executeOutputBytes">;

export interface ProvisionOptions {
  /** Start the pool's isolates now (default true). */
  warm?: boolean;
  /** Where sandboxes' requests go (the gateway). Without it every request is refused, unaudited. */
  egress?: Egress;
  /**
   * Where workspaces persist: restored when a session is claimed, saved when its work item ends
   * (content-addressed chunks, then the manifest, then one compare-and-set of the session's
   * head). Absent: each work item starts with an empty workspace.
   */
  state?: Pick<StateStores, "store" | "blobs">;
}

export function createProvisioner(runtime: Runtime, config: SandboxConfig, custom: Tool[] = [], opts: ProvisionOptions = {}): Provisioner {
  let host: IsolateHost | undefined;
  if (config.sandbox !== "none") {
    host = runtime.isolates?.(config.sandbox);
    if (!host && config.sandbox !== "auto") {
      const offered = ["auto", "none", ...(runtime.isolateTiers ?? [])].join(", ");
      throw new ConfigError(`sandbox: ${runtime.name} does not host the ${JSON.stringify(config.sandbox)} tier (choose one of: ${offered})`);
    }
  }
  const pool = host ? new IsolatePool(host, config.isolatePool, { memoryMiB: config.isolateMemoryMib, maxProcesses: 16 }) : undefined;
  if (opts.warm !== false) pool?.fill();
  const ownExecute = !custom.some((t) => t.name === "execute"); // a user's own `execute` wins
  // Workspaces whose save failed (store down), by session: retried in the background until saved
  // or until another worker saved the session (a conflict: theirs is the newer state).
  const unsaved = new Map<string, { fs: ReturnType<typeof createWorkspaceFs>; snapshot: SnapshotInfo | undefined; log: Logger | undefined }>();
  let retryTimer: ReturnType<typeof setInterval> | undefined;
  const retryUnsaved = async () => {
    const state = opts.state;
    if (!state) return;
    for (const [sessionId, u] of [...unsaved]) {
      try {
        const snap = await saveWorkspace(u.fs, { store: state.store, blobs: state.blobs, sessionId, ...(u.snapshot ? { previous: u.snapshot } : {}) });
        if (unsaved.get(sessionId) === u) unsaved.delete(sessionId);
        u.log?.info("workspace saved on retry", { files: snap.files, bytes: snap.bytes, seq: snap.seq });
      } catch (e) {
        if (e instanceof WorkspaceConflictError) {
          unsaved.delete(sessionId);
          u.log?.warn("another worker saved this session meanwhile; its workspace is the newer one", {});
        }
      }
    }
    if (!unsaved.size && retryTimer) {
      clearInterval(retryTimer);
      retryTimer = undefined;
    }
  };
  const keepUnsaved = (sessionId: string, fs: ReturnType<typeof createWorkspaceFs>, snapshot: SnapshotInfo | undefined, log: Logger | undefined) => {
    unsaved.set(sessionId, { fs, snapshot, log });
    if (!retryTimer) {
      retryTimer = setInterval(() => void retryUnsaved(), UNSAVED_RETRY_MS);
      (retryTimer as unknown as { unref?(): void }).unref?.();
    }
  };
  const label = host ? `${host.tier} (${host.isolation}) on ${runtime.name}` : `workspace tools only, no execute, on ${runtime.name}`;
  return {
    label,
    async provision({ sessionId, mcpServerHosts, log }) {
      const state = opts.state;
      // A workspace whose save failed is newer than the store's: serve the session from it.
      const kept = unsaved.get(sessionId);
      unsaved.delete(sessionId);
      const fs = kept?.fs ?? createWorkspaceFs();
      let snapshot: SnapshotInfo | undefined = kept?.snapshot;
      if (state && !kept) {
        const t0 = performance.now();
        snapshot = (await loadWorkspace(fs, { store: state.store, blobs: state.blobs, sessionId })) ?? undefined;
        if (snapshot) log?.info("workspace restored", { files: snapshot.files, bytes: snapshot.bytes, seq: snapshot.seq, ms: Math.round(performance.now() - t0) });
      } else if (kept) log?.info("workspace kept in memory since its last save failed; saving it when this item ends", {});
      const tools = standardToolset(fs);
      const egress = opts.egress;
      const tier = host?.tier ?? "host";
      const outboundFor = egress ? (ctx: { toolUseId: string }) => egress.outbound({ sessionId, toolUseId: ctx.toolUseId, tier, ...(mcpServerHosts ? { mcpServerHosts } : {}) }) : undefined;
      const services = egress && Object.keys(egress.policy.policy.services).length && !custom.some((t) => t.name === "call_service") ? [callServiceTool(egress, { sessionId, tier: "host", ...(mcpServerHosts ? { mcpServerHosts } : {}) })] : [];
      const execute =
        pool && ownExecute
          ? [executeTool(new IsolateSandbox({ sessionId, pool, fs, outputLimitBytes: config.executeOutputBytes }), { tools: [...tools, ...services], ...(outboundFor ? { outboundFor } : {}) })]
          : [];
      const persist = state
        ? async () => {
            const t0 = performance.now();
            try {
              snapshot = await saveWorkspace(fs, { store: state.store, blobs: state.blobs, sessionId, ...(snapshot ? { previous: snapshot } : {}) });
            } catch (e) {
              // Keep it: the item stays unacknowledged, and whoever serves the session next on
              // this worker continues from this workspace; a background retry saves it meanwhile.
              if (!(e instanceof WorkspaceConflictError)) keepUnsaved(sessionId, fs, snapshot, log);
              throw e;
            }
            const st = snapshot.stats;
            log?.info("workspace saved", { files: snapshot.files, bytes: snapshot.bytes, seq: snapshot.seq, incremental: st.incremental, uploaded_chunks: st.uploadedChunks, uploaded_bytes: st.uploadedBytes, ms: Math.round(performance.now() - t0) });
          }
        : undefined;
      return { router: new Router({ builtin: tools, custom: [...custom, ...services, ...execute] }), label, ...(persist ? { persist } : {}) };
    },
    close: async () => {
      if (retryTimer) clearInterval(retryTimer);
      await retryUnsaved(); // a last try before the process goes
      await pool?.close();
    },
  };
}
