/**
 * The router: which tool answers a call, input validation, and the mapping of whatever a tool
 * returns (or throws) to result content. It never throws: every failure is an `is_error` result.
 */
import type { ContentBlock, ResultContent } from "../contract/mod.ts";
import { isAbortError } from "../timing.ts";
import { ToolError, type Tool, type ToolContext, type ToolOutput, type ToolResult } from "./tool.ts";

export type CallKind = "builtin" | "custom";

export interface RouterOptions {
  /** Tools that answer `agent.tool_use` (the standard toolset and other sandbox tools). */
  builtin?: Tool[];
  /** Tools that answer `agent.custom_tool_use`. */
  custom?: Tool[];
}

export class Router {
  readonly #builtin = new Map<string, Tool>();
  readonly #custom = new Map<string, Tool>();

  constructor(opts: RouterOptions = {}) {
    for (const t of opts.builtin ?? []) this.#add(this.#builtin, t, "builtin");
    for (const t of opts.custom ?? []) this.#add(this.#custom, t, "custom");
  }

  #add(map: Map<string, Tool>, tool: Tool, kind: CallKind) {
    if (map.has(tool.name)) throw new TypeError(`Router: two ${kind} tools are named ${JSON.stringify(tool.name)}`);
    map.set(tool.name, tool);
  }

  lookup(kind: CallKind, name: string): Tool | undefined {
    return (kind === "builtin" ? this.#builtin : this.#custom).get(name);
  }

  /**
   * Does this worker answer the call? Builtin calls are always ours (a sandbox tool we lack gets
   * an error result that names it); a custom call is ours only if we registered the name, since
   * another client of the session may own it.
   */
  owns(kind: CallKind, name: string): boolean {
    return kind === "builtin" || this.#custom.has(name);
  }

  get builtinTools(): Tool[] {
    return [...this.#builtin.values()];
  }
  get customTools(): Tool[] {
    return [...this.#custom.values()];
  }

  /** Validate, run and map. Always resolves to a result. */
  async call(kind: CallKind, name: string, input: unknown, ctx: ToolContext): Promise<ToolResult> {
    const tool = this.lookup(kind, name);
    if (!tool) {
      const have = [...this.#builtin.keys()].join(", ") || "none";
      return errorResult(`no tool named "${name}" is available in this environment (tools here: ${have})`);
    }
    const parsed = tool.input.safeParse(input ?? {});
    if (!parsed.success) {
      const issues = parsed.error.issues
        .slice(0, 5)
        .map((i) => `${i.path.length ? i.path.join(".") : "(input)"}: ${i.message}`)
        .join("; ");
      return errorResult(`${name}: invalid input: ${issues}`);
    }
    try {
      return toResult(await tool.run(parsed.data, ctx));
    } catch (err) {
      if (err instanceof ToolError) return errorResult(err.message);
      if (ctx.signal.aborted && isAbortError(err)) {
        return errorResult(`${name}: ${describeAbort(ctx.signal.reason)}`);
      }
      const message = err instanceof Error ? err.message : String(err);
      return errorResult(`Error: ${message}`);
    }
  }
}

function describeAbort(reason: unknown): string {
  if (reason instanceof Error && reason.message) return reason.message;
  if (typeof reason === "string") return reason;
  return "aborted";
}

const NO_OUTPUT = "(no output)";

/** Result content as one text: text blocks as they are, any other block as JSON. */
export function contentText(content: ResultContent): string {
  return content.map((b) => (b.type === "text" ? (b as { text: string }).text : JSON.stringify(b))).join("\n");
}

export function errorResult(text: string): ToolResult {
  return { content: [{ type: "text", text: text || "error" }], is_error: true };
}

/** Map a tool's output to wire content (spec §8: empty becomes "(no output)"). */
export function toResult(out: ToolOutput): ToolResult {
  if (typeof out === "string") return { content: [{ type: "text", text: out || NO_OUTPUT }], is_error: false };
  if (Array.isArray(out)) return { content: mapBlocks(out), is_error: false };
  if (out && typeof out === "object" && "content" in out) {
    const content = mapBlocks(out.content as ContentBlock[]);
    if (out.is_error) {
      // An is_error result must be non-empty text only, or the API answers 400.
      return errorResult(contentText(content));
    }
    return { content, is_error: false };
  }
  return { content: [{ type: "text", text: JSON.stringify(out) ?? NO_OUTPUT }], is_error: false };
}

function mapBlocks(blocks: ContentBlock[]): ResultContent {
  const out: ResultContent = [];
  for (const b of blocks) {
    if (b && b.type === "text") {
      const text = (b as { text?: unknown }).text;
      out.push({ type: "text", text: typeof text === "string" && text ? text : NO_OUTPUT });
    } else if (b && (b.type === "image" || b.type === "document" || b.type === "search_result")) {
      out.push(b);
    } else {
      out.push({ type: "text", text: JSON.stringify(b) });
    }
  }
  return out.length ? out : [{ type: "text", text: NO_OUTPUT }];
}
