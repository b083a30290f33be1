/**
 * `execute`: run a JavaScript or TypeScript snippet in the session's sandbox (a fresh isolate per
 * call). Inside, the workspace and the session's other tools are async functions (the code-mode
 * pattern: one snippet can read, grep and write many files in one round trip), `console` is
 * captured, and `fetch` goes to the host's outbound handler: the guest has no network of its own.
 */
import { z } from "zod";
import { Router } from "../core/router/router.ts";
import { defineTool, ToolError, type Tool, type ToolContext } from "../core/router/tool.ts";
import type { GuestBindings, Sandbox } from "../core/sandbox/sandbox.ts";

export const EXECUTE_DEFAULT_TIMEOUT_MS = 30_000;
export const EXECUTE_MAX_TIMEOUT_MS = 300_000;

const DESCRIPTION = `Run a JavaScript or TypeScript snippet in an isolated sandbox and return its console output and result.
The snippet is the body of an async function: use top-level await and \`return\` a JSON-serialisable value.
Available inside: \`workspace\` (readFile, readBytes, writeFile, readdir, stat, mkdir, remove, rename, exists; paths relative to the workspace),
\`tools\` (the session's other tools, e.g. \`await tools.grep({pattern: "TODO"})\` returns their text output),
\`fetch\` (goes through the environment's egress policy), and \`console\`. No other network, no host files, no processes.`;

export function executeTool(sandbox: Sandbox, opts: { tools?: Tool[]; outbound?: GuestBindings["outbound"] } = {}): Tool {
  const inner = new Router({ builtin: opts.tools ?? [] });
  const bindingsFor = (ctx: ToolContext): GuestBindings => ({
    tools: Object.fromEntries(
      inner.builtinTools.map((t) => [
        t.name,
        async (input: unknown) => {
          const r = await inner.call("builtin", t.name, input, ctx);
          const text = r.content.map((b) => (b.type === "text" ? (b as { text: string }).text : JSON.stringify(b))).join("\n");
          if (r.is_error) throw new Error(text);
          return text;
        },
      ]),
    ),
    ...(opts.outbound ? { outbound: opts.outbound } : {}),
  });
  return defineTool({
    name: "execute",
    description: DESCRIPTION,
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
