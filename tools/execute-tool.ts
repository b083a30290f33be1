/**
 * `execute`: run a JavaScript or TypeScript snippet in the session's sandbox (a fresh isolate per
 * call). Inside, the workspace and the session's other tools are async functions (the code-mode
 * pattern: one snippet can read, grep and write many files in one round trip), `console` is
 * captured, and `fetch` goes to the host's outbound handler: the guest has no network of its own.
 */
import { z } from "zod";
import { contentText, Router } from "../core/router/router.ts";
import { defineTool, ToolError, type Tool, type ToolContext } from "../core/router/tool.ts";
import type { GuestBindings, Sandbox } from "../core/sandbox/sandbox.ts";

export const EXECUTE_DEFAULT_TIMEOUT_MS = 30_000;
export const EXECUTE_MAX_TIMEOUT_MS = 300_000;

const WORKSPACE_TYPES = `declare const workspace: {
  readFile(path: string): Promise<string>; readBytes(path: string): Promise<Uint8Array>;
  writeFile(path: string, data: string | Uint8Array): Promise<void>;
  readdir(path?: string): Promise<Array<{ name: string; type: "file" | "directory" | "symlink" }>>;
  stat(path: string): Promise<{ type: "file" | "directory" | "symlink"; size: number; mtimeMs: number }>;
  mkdir(path: string): Promise<void>; remove(path: string, opts?: { recursive?: boolean }): Promise<void>;
  rename(from: string, to: string): Promise<void>; exists(path: string): Promise<boolean>;
};`;

/** The tool's description: what the snippet can use, as TypeScript declarations. */
function describe(tools: Tool[]): string {
  const toolTypes = tools.map((t) => `  ${t.name}(input: ${tsType(t.inputSchema())}): Promise<string>;`).join("\n");
  return `Run a JavaScript or TypeScript snippet in an isolated sandbox and return its console output and result.
The snippet is the body of an async function: use top-level await and \`return\` a JSON-serialisable value.
Paths are relative to the workspace. A tool call returns the tool's text output, or throws with its error text.
\`fetch\` goes through the environment's egress policy; \`console\` is captured. No other network, host files or processes.
${WORKSPACE_TYPES}
declare const tools: {
${toolTypes}
};`;
}

/** A JSON schema (as zod renders one) as a TypeScript type, for the declarations above. */
function tsType(s: Record<string, unknown> | undefined): string {
  if (!s) return "unknown";
  if (Array.isArray(s["enum"])) return (s["enum"] as unknown[]).map((v) => JSON.stringify(v)).join(" | ");
  switch (s["type"]) {
    case "string":
      return "string";
    case "integer":
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "array": {
      const items = s["prefixItems"] as Array<Record<string, unknown>> | undefined;
      return items ? `[${items.map(tsType).join(", ")}]` : `${tsType(s["items"] as Record<string, unknown>)}[]`;
    }
    case "object": {
      const props = (s["properties"] ?? {}) as Record<string, Record<string, unknown>>;
      const req = new Set((s["required"] ?? []) as string[]);
      return `{ ${Object.entries(props)
        .map(([k, v]) => `${k}${req.has(k) ? "" : "?"}: ${tsType(v)}`)
        .join("; ")} }`;
    }
    default:
      return "unknown";
  }
}

export interface ExecuteToolOptions {
  /** The tools a snippet may call (as `tools.<name>(input)`). */
  tools?: Tool[];
  /** The outbound handler of the snippet's `fetch` (default: the sandbox's own, deny-all). */
  outbound?: GuestBindings["outbound"];
  /** Per call instead: an outbound handler that knows the tool call (the gateway audits it). */
  outboundFor?(ctx: ToolContext): NonNullable<GuestBindings["outbound"]>;
}

export function executeTool(sandbox: Sandbox, opts: ExecuteToolOptions = {}): Tool {
  const inner = new Router({ builtin: opts.tools ?? [] });
  const bindingsFor = (ctx: ToolContext): GuestBindings => ({
    tools: Object.fromEntries(
      inner.builtinTools.map((t) => [
        t.name,
        async (input: unknown) => {
          const r = await inner.call("builtin", t.name, input, ctx);
          const text = contentText(r.content);
          if (r.is_error) throw new Error(text);
          return text;
        },
      ]),
    ),
    ...(opts.outboundFor ? { outbound: opts.outboundFor(ctx) } : opts.outbound ? { outbound: opts.outbound } : {}),
  });
  return defineTool({
    name: "execute",
    description: describe(inner.builtinTools),
    input: z.object({
      code: z.string().min(1).max(1_000_000),
      language: z.enum(["js", "ts"]).default("js"),
      timeout_ms: z.number().int().min(1).max(EXECUTE_MAX_TIMEOUT_MS).optional(),
    }),
    timeoutMs: EXECUTE_MAX_TIMEOUT_MS + 5_000,
    run: async ({ code, language, timeout_ms }, ctx) => {
      const r = await sandbox.execute({ code, language, timeoutMs: timeout_ms || EXECUTE_DEFAULT_TIMEOUT_MS }, { signal: ctx.signal, bindings: bindingsFor(ctx) });
      const out = [...r.logs];
      if (r.truncated) out.push("[output truncated]");
      if (!r.ok) throw new ToolError([...out, `execute: ${r.error!.message.replace(/^execute: /, "")}`].join("\n"));
      if (r.value !== undefined) out.push(`=> ${JSON.stringify(r.value, null, 2)}`);
      return out.join("\n") || "(no output)";
    },
  });
}
