// A brain backed by the real Messages API: the model decides the tool calls,
// the worker under test executes them. Same Brain seam as the scenario brain.
import Anthropic from "@anthropic-ai/sdk";
import { textBlocks, type Brain, type BrainHost } from "./brain.ts";
import { resultText } from "./scenario.ts";
import type { SessionEvent } from "./types.ts";

/** The six sandbox tools with the wire input schemas of spec §9.1. */
export const STANDARD_TOOL_DEFINITIONS: Anthropic.Tool[] = [
  {
    name: "bash",
    description: "Run a shell command in a persistent bash session in the working directory.",
    input_schema: {
      type: "object",
      properties: { command: { type: "string" }, restart: { type: "boolean" }, timeout_ms: { type: "integer" } },
    },
  },
  {
    name: "read",
    description: "Read a UTF-8 file; view_range is [start, end] 1-based inclusive lines (end <= 0 means EOF).",
    input_schema: {
      type: "object",
      properties: { file_path: { type: "string" }, view_range: { type: "array", items: { type: "integer" }, minItems: 2, maxItems: 2 } },
      required: ["file_path"],
    },
  },
  {
    name: "write",
    description: "Create or overwrite a whole file.",
    input_schema: {
      type: "object",
      properties: { file_path: { type: "string" }, content: { type: "string" } },
      required: ["file_path", "content"],
    },
  },
  {
    name: "edit",
    description: "Replace old_string with new_string in a file (unique match unless replace_all).",
    input_schema: {
      type: "object",
      properties: {
        file_path: { type: "string" },
        old_string: { type: "string" },
        new_string: { type: "string" },
        replace_all: { type: "boolean" },
      },
      required: ["file_path", "old_string", "new_string"],
    },
  },
  {
    name: "glob",
    description: "Find files matching a relative glob pattern, newest first.",
    input_schema: { type: "object", properties: { pattern: { type: "string" }, path: { type: "string" } }, required: ["pattern"] },
  },
  {
    name: "grep",
    description: "Search file contents for a regular expression.",
    input_schema: { type: "object", properties: { pattern: { type: "string" }, path: { type: "string" } }, required: ["pattern"] },
  },
];

export interface MessagesBrainOptions {
  apiKey: string;
  model?: string;
  baseURL?: string;
  maxTokens?: number;
  /** Model round-trips per turn before the brain gives up. */
  maxIterations?: number;
}

export class MessagesBrain implements Brain {
  readonly #host: BrainHost;
  readonly #client: Anthropic;
  readonly #model: string;
  readonly #maxTokens: number;
  readonly #maxIterations: number;
  readonly #messages: Anthropic.MessageParam[] = [];
  /** Outstanding calls of the current assistant message: session event id -> Messages API tool_use id. */
  readonly #pending = new Map<string, string>();
  readonly #results: Anthropic.ToolResultBlockParam[] = [];
  #iterations = 0;
  #closed = false;

  constructor(host: BrainHost, opts: MessagesBrainOptions) {
    this.#host = host;
    this.#client = new Anthropic({ apiKey: opts.apiKey, ...(opts.baseURL ? { baseURL: opts.baseURL } : {}) });
    this.#model = opts.model ?? "claude-sonnet-4-5";
    this.#maxTokens = opts.maxTokens ?? 4096;
    this.#maxIterations = opts.maxIterations ?? 20;
  }

  close(): void {
    this.#closed = true;
  }

  async onEvent(ev: SessionEvent): Promise<void> {
    if (this.#closed) return;
    if (ev.type === "user.message") {
      if (this.#pending.size > 0) return; // mid-turn input is not modelled
      this.#messages.push({ role: "user", content: resultText(ev["content"]) || "(empty message)" });
      this.#iterations = 0;
      this.#host.emit({ type: "session.status_running" });
      await this.#step();
    } else if (ev.type === "user.tool_result") {
      this.#answer(String(ev["tool_use_id"]), resultText(ev["content"]) || "(no output)", ev["is_error"] === true);
      if (this.#pending.size === 0) await this.#resume();
    } else if (ev.type === "user.tool_confirmation" && ev["result"] !== "allow") {
      this.#answer(String(ev["tool_use_id"]), "The user denied this tool call.", true);
      if (this.#pending.size === 0) await this.#resume();
    }
  }

  #answer(eventId: string, text: string, isError: boolean): void {
    const toolUseId = this.#pending.get(eventId);
    if (toolUseId === undefined) return;
    this.#pending.delete(eventId);
    this.#results.push({ type: "tool_result", tool_use_id: toolUseId, content: text, is_error: isError });
  }

  async #resume(): Promise<void> {
    this.#messages.push({ role: "user", content: this.#results.splice(0) });
    this.#host.emit({ type: "session.status_running" });
    await this.#step();
  }

  async #step(): Promise<void> {
    if (this.#closed) return;
    if (++this.#iterations > this.#maxIterations) {
      this.#host.emit({ type: "session.status_idle", stop_reason: { type: "retries_exhausted" }, stop_details: null });
      return;
    }
    let resp: Anthropic.Message;
    try {
      resp = await this.#client.messages.create({
        model: this.#model,
        max_tokens: this.#maxTokens,
        tools: STANDARD_TOOL_DEFINITIONS,
        messages: this.#messages,
      });
    } catch (e) {
      this.#host.emit({ type: "session.error", error: { type: "model_request_failed", message: String(e), retry_status: { type: "terminal" } } });
      this.#host.emit({ type: "session.status_idle", stop_reason: { type: "retries_exhausted" }, stop_details: null });
      return;
    }
    this.#messages.push({ role: "assistant", content: resp.content });
    for (const block of resp.content) {
      if (block.type === "text" && block.text) this.#host.emit({ type: "agent.message", content: textBlocks(block.text) });
      if (block.type === "tool_use") {
        const ev = this.#host.emit({
          type: "agent.tool_use",
          name: block.name,
          input: block.input,
          evaluated_permission: "allow",
          evaluation: { type: "always_allow" },
        });
        this.#pending.set(ev.id, block.id);
      }
    }
    if (this.#pending.size > 0) {
      this.#host.emit({
        type: "session.status_idle",
        stop_reason: { type: "requires_action", event_ids: [...this.#pending.keys()] },
        stop_details: null,
      });
      return;
    }
    this.#host.emit({ type: "session.status_idle", stop_reason: { type: "end_turn" }, stop_details: null });
    this.#host.markDone();
  }
}
