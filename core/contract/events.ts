/**
 * Session events (spec §6). Every event the worker acts on has a schema; unknown types and
 * extra fields pass through untouched. A known type whose required field is malformed is
 * reported (with the event id) and skipped by the caller, never a crash.
 */
import { z } from "zod";

const base = { id: z.string().min(1), processed_at: z.string().nullable().optional() };
const thread = { session_thread_id: z.string().nullable().optional() };

export const TextBlockSchema = z.looseObject({ type: z.literal("text"), text: z.string() });
export const ContentBlockSchema = z.looseObject({ type: z.string() });
export type ContentBlock = z.infer<typeof ContentBlockSchema>;

export const PermissionSchema = z.string(); // "allow" | "ask" | "deny", open set (unknown = ask)

export const AgentToolUseSchema = z.looseObject({
  ...base,
  ...thread,
  type: z.literal("agent.tool_use"),
  name: z.string().min(1),
  input: z.record(z.string(), z.unknown()),
  evaluated_permission: PermissionSchema.nullable().optional(),
  evaluation: z.unknown().optional(),
});
export const AgentCustomToolUseSchema = z.looseObject({
  ...base,
  ...thread,
  type: z.literal("agent.custom_tool_use"),
  name: z.string().min(1),
  input: z.record(z.string(), z.unknown()),
});
export const UserToolResultSchema = z.looseObject({
  ...base,
  ...thread,
  type: z.literal("user.tool_result"),
  tool_use_id: z.string().min(1),
  content: z.array(ContentBlockSchema).nullable().optional(),
  is_error: z.boolean().nullable().optional(),
});
export const UserCustomToolResultSchema = z.looseObject({
  ...base,
  ...thread,
  type: z.literal("user.custom_tool_result"),
  custom_tool_use_id: z.string().min(1),
  content: z.array(ContentBlockSchema).nullable().optional(),
  is_error: z.boolean().nullable().optional(),
});
export const UserToolConfirmationSchema = z.looseObject({
  ...base,
  ...thread,
  type: z.literal("user.tool_confirmation"),
  tool_use_id: z.string().min(1),
  result: z.string(), // "allow" | "deny"; anything else is treated as deny
  deny_message: z.string().nullable().optional(),
});
export const StopReasonSchema = z.looseObject({
  type: z.string(),
  event_ids: z.array(z.string()).optional(),
});
export const SessionStatusIdleSchema = z.looseObject({
  ...base,
  type: z.literal("session.status_idle"),
  stop_reason: StopReasonSchema.nullable().optional(),
});
export const ThreadTerminatedSchema = z.looseObject({
  ...base,
  type: z.literal("session.thread_status_terminated"),
  session_thread_id: z.string().min(1),
});
export const SessionErrorSchema = z.looseObject({
  ...base,
  type: z.literal("session.error"),
  error: z.looseObject({ type: z.string().optional(), message: z.string().optional() }).optional(),
});
export const SessionTerminatedSchema = z.looseObject({ ...base, type: z.literal("session.status_terminated") });
export const SessionDeletedSchema = z.looseObject({ ...base, type: z.literal("session.deleted") });

// The rest of the catalogue (spec §6): validated when they arrive, acted on by nobody here
// (server-side tools, messages, status and thread changes, telemetry).
const withContent = { content: z.array(ContentBlockSchema) };
export const OTHER_EVENT_SCHEMAS = {
  "agent.mcp_tool_use": z.looseObject({ ...base, ...thread, type: z.literal("agent.mcp_tool_use"), name: z.string(), mcp_server_name: z.string(), input: z.unknown() }),
  "agent.mcp_tool_result": z.looseObject({ ...base, ...thread, type: z.literal("agent.mcp_tool_result"), mcp_tool_use_id: z.string() }),
  "agent.tool_result": z.looseObject({ ...base, ...thread, type: z.literal("agent.tool_result"), tool_use_id: z.string() }),
  "agent.message": z.looseObject({ ...base, ...thread, type: z.literal("agent.message"), ...withContent }),
  "agent.thinking": z.looseObject({ ...base, ...thread, type: z.literal("agent.thinking") }),
  "user.message": z.looseObject({ ...base, type: z.literal("user.message"), ...withContent }),
  "user.interrupt": z.looseObject({ ...base, ...thread, type: z.literal("user.interrupt") }),
  "user.define_outcome": z.looseObject({ ...base, type: z.literal("user.define_outcome"), description: z.string() }),
  "system.message": z.looseObject({ ...base, type: z.literal("system.message"), ...withContent }),
  "session.status_running": z.looseObject({ ...base, type: z.literal("session.status_running") }),
  "session.status_rescheduled": z.looseObject({ ...base, type: z.literal("session.status_rescheduled") }),
  "session.updated": z.looseObject({ ...base, type: z.literal("session.updated") }),
  "session.usage": z.looseObject({ ...base, type: z.literal("session.usage") }),
  "session.thread_created": z.looseObject({ ...base, type: z.literal("session.thread_created"), session_thread_id: z.string(), agent_name: z.string().nullable().optional() }),
  "session.thread_status_running": z.looseObject({ ...base, type: z.literal("session.thread_status_running"), session_thread_id: z.string() }),
  "session.thread_status_idle": z.looseObject({ ...base, type: z.literal("session.thread_status_idle"), session_thread_id: z.string(), stop_reason: StopReasonSchema.nullable().optional() }),
  "session.thread_status_rescheduled": z.looseObject({ ...base, type: z.literal("session.thread_status_rescheduled"), session_thread_id: z.string() }),
} as const;

/** Schemas for the event types the worker reads; anything else is passed through as unknown. */
export const KNOWN_EVENT_SCHEMAS = {
  "agent.tool_use": AgentToolUseSchema,
  "agent.custom_tool_use": AgentCustomToolUseSchema,
  "user.tool_result": UserToolResultSchema,
  "user.custom_tool_result": UserCustomToolResultSchema,
  "user.tool_confirmation": UserToolConfirmationSchema,
  "session.status_idle": SessionStatusIdleSchema,
  "session.thread_status_terminated": ThreadTerminatedSchema,
  "session.status_terminated": SessionTerminatedSchema,
  "session.deleted": SessionDeletedSchema,
  "session.error": SessionErrorSchema,
} as const;

export type AgentToolUse = z.infer<typeof AgentToolUseSchema>;
export type AgentCustomToolUse = z.infer<typeof AgentCustomToolUseSchema>;
export type UserToolResult = z.infer<typeof UserToolResultSchema>;
export type UserCustomToolResult = z.infer<typeof UserCustomToolResultSchema>;
export type UserToolConfirmation = z.infer<typeof UserToolConfirmationSchema>;
export type SessionStatusIdle = z.infer<typeof SessionStatusIdleSchema>;
export type ThreadTerminated = z.infer<typeof ThreadTerminatedSchema>;

export type KnownEvent =
  | AgentToolUse
  | AgentCustomToolUse
  | UserToolResult
  | UserCustomToolResult
  | UserToolConfirmation
  | SessionStatusIdle
  | ThreadTerminated
  | z.infer<typeof SessionTerminatedSchema>
  | z.infer<typeof SessionDeletedSchema>
  | z.infer<typeof SessionErrorSchema>;

/** Any event: a known one, or an unknown type kept as-is. */
export interface UnknownEvent {
  type: string;
  id?: string;
  [k: string]: unknown;
}

export type ParsedEvent =
  | { ok: true; known: true; event: KnownEvent }
  | { ok: true; known: false; event: UnknownEvent }
  | { ok: false; id: string | undefined; type: string | undefined; issue: string };

/**
 * Classify one raw event. Never throws. A known type with a malformed required field gives
 * `{ok:false}` with the event id and the first issue's path, for a log line; the caller skips it.
 */
export function parseEvent(raw: unknown): ParsedEvent {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return { ok: false, id: undefined, type: undefined, issue: "event is not an object" };
  }
  const obj = raw as Record<string, unknown>;
  const type = typeof obj.type === "string" ? obj.type : undefined;
  const id = typeof obj.id === "string" ? obj.id : undefined;
  if (type === undefined) return { ok: false, id, type, issue: "event has no string `type`" };
  const schema = (KNOWN_EVENT_SCHEMAS as Record<string, z.ZodType>)[type];
  if (!schema) {
    // A catalogued type the worker does not act on: still checked, so a broken one is reported.
    const other = (OTHER_EVENT_SCHEMAS as Record<string, z.ZodType>)[type];
    if (other) {
      const r = other.safeParse(raw);
      if (!r.success) return { ok: false, id, type, issue: issueText(r.error) };
    }
    return { ok: true, known: false, event: obj as UnknownEvent };
  }
  const parsed = schema.safeParse(raw);
  if (parsed.success) return { ok: true, known: true, event: parsed.data as KnownEvent };
  return { ok: false, id, type, issue: issueText(parsed.error) };
}

function issueText(error: z.ZodError): string {
  const first = error.issues[0];
  const where = first && first.path.length ? first.path.join(".") : "(root)";
  return `${where}: ${first?.message ?? "invalid"}`;
}

/** Result content blocks the worker sends: text (and passthrough image/document blocks). */
export type ResultContent = Array<{ type: "text"; text: string } | Record<string, unknown>>;

export interface ToolResultParams {
  type: "user.tool_result";
  tool_use_id: string;
  content: ResultContent;
  is_error: boolean;
}
export interface CustomToolResultParams {
  type: "user.custom_tool_result";
  custom_tool_use_id: string;
  content: ResultContent;
  is_error: boolean;
}
