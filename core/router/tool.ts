/**
 * `defineTool`: a tool is a name, a description, a zod input schema and `run(input, ctx)`.
 * The same shape serves builtin tools (answered as `user.tool_result`) and custom tools
 * (answered as `user.custom_tool_result`).
 */
import { z } from "zod";
import type { ContentBlock, ResultContent } from "../contract/mod.ts";
import type { Logger } from "../log.ts";

export interface ToolContext {
  sessionId: string;
  toolUseId: string;
  /** Fires on the per-tool timeout, on lease loss, and on shutdown past the drain timeout. */
  signal: AbortSignal;
  log: Logger;
}

/** What `run` may return: plain text, content blocks, or an explicit result. */
export type ToolOutput = string | ContentBlock[] | ToolResult;

export interface ToolResult {
  content: ResultContent;
  is_error: boolean;
}

/** Throw this from `run` for an `is_error` result whose text is exactly `message`. */
export class ToolError extends Error {
  override name = "ToolError";
  readonly code = "tool_error";
}

export interface ToolSpec<S extends z.ZodType> {
  name: string;
  description: string;
  input: S;
  run(input: z.output<S>, ctx: ToolContext): ToolOutput | Promise<ToolOutput>;
  /** Safe to run again after a crash interrupted it (default false: reported as interrupted). */
  idempotent?: boolean;
  /** Overrides the runner's per-tool timeout for this tool. */
  timeoutMs?: number;
}

export interface Tool<S extends z.ZodType = z.ZodType> extends ToolSpec<S> {
  /** The JSON schema of `input`, as the agent configuration declares it. */
  inputSchema(): Record<string, unknown>;
}

const NAME = /^[a-zA-Z0-9_-]{1,64}$/;

export function defineTool<S extends z.ZodType>(spec: ToolSpec<S>): Tool<S> {
  if (!NAME.test(spec.name)) {
    throw new TypeError(`defineTool: name ${JSON.stringify(spec.name)} must match ${NAME}`);
  }
  let cached: Record<string, unknown> | undefined;
  return {
    ...spec,
    inputSchema() {
      if (!cached) {
        const { $schema: _drop, ...rest } = z.toJSONSchema(spec.input, { io: "input" }) as Record<string, unknown>;
        cached = rest;
      }
      return cached;
    },
  };
}

/** The declaration of a custom tool for the agent's `tools` array. */
export function customToolDeclaration(tool: Tool): { type: "custom"; name: string; description: string; input_schema: Record<string, unknown> } {
  return { type: "custom", name: tool.name, description: tool.description, input_schema: tool.inputSchema() };
}
