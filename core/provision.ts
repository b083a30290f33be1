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
import { callServiceTool } from "../tools/call-service-tool.ts";

export interface Provisioner {
  /** e.g. "deno-subprocess (isolate) on node", or "workspace tools only on node". */
  readonly label: string;
  provision(ctx: { sessionId: string; mcpServerHosts?: readonly string[] }): SessionTools;
  close(): Promise<void>;
}

type SandboxConfig = Pick<Config, "sandbox" | "isolateMemoryMib" | "isolatePool" | "executeOutputBytes">;

export interface ProvisionOptions {
  /** Start the pool's isolates now (default true). */
  warm?: boolean;
  /** Where sandboxes' requests go (the gateway). Without it every request is refused, unaudited. */
  egress?: Egress;
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
  const label = host ? `${host.tier} (${host.isolation}) on ${runtime.name}` : `workspace tools only, no execute, on ${runtime.name}`;
  return {
    label,
    provision({ sessionId, mcpServerHosts }) {
      const fs = createWorkspaceFs();
      const tools = standardToolset(fs);
      const egress = opts.egress;
      const tier = host?.tier ?? "host";
      const outboundFor = egress ? (ctx: { toolUseId: string }) => egress.outbound({ sessionId, toolUseId: ctx.toolUseId, tier, ...(mcpServerHosts ? { mcpServerHosts } : {}) }) : undefined;
      const services = egress && Object.keys(egress.policy.policy.services).length && !custom.some((t) => t.name === "call_service") ? [callServiceTool(egress, { sessionId, tier: "host", ...(mcpServerHosts ? { mcpServerHosts } : {}) })] : [];
      const execute =
        pool && ownExecute
          ? [executeTool(new IsolateSandbox({ sessionId, pool, fs, outputLimitBytes: config.executeOutputBytes }), { tools: [...tools, ...services], ...(outboundFor ? { outboundFor } : {}) })]
          : [];
      return { router: new Router({ builtin: tools, custom: [...custom, ...services, ...execute] }), label };
    },
    close: async () => pool?.close(),
  };
}
