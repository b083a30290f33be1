// Scenario scripts: the emulator's default "brain". JSON, validated with zod.
import { z } from "zod";

const ExpectSchema = z
  .object({
    /** The result's `is_error` must equal this (absent counts as false). */
    is_error: z.boolean().optional(),
    /** The result's text (text blocks joined by "\n") must contain this. */
    contains: z.string().optional(),
    /** The result's text must match this regular expression (JS syntax). */
    matches: z.string().optional(),
    /** The result's text must equal this exactly. */
    equals: z.string().optional(),
  })
  .strict();

const CallSchema = z
  .object({
    name: z.string().min(1),
    input: z.record(z.string(), z.unknown()).default({}),
    /** true: emitted as `agent.custom_tool_use` (name must be in `custom_tools`). */
    custom: z.boolean().default(false),
    /** `evaluated_permission` on the `agent.tool_use`; "deny" expects no result. */
    permission: z.enum(["allow", "ask", "deny"]).default("allow"),
    /**
     * Non-standard convenience for unattended runs: for an "ask" call, the
     * emulator itself posts `user.tool_confirmation` with this verdict (as the
     * user would) right after the call is emitted.
     */
    auto_confirm: z.enum(["allow", "deny"]).optional(),
    expect: ExpectSchema.optional(),
  })
  .strict();

const StepSchema = z
  .object({
    say: z.string().optional(),
    calls: z.array(CallSchema).default([]),
  })
  .strict();

const TurnSchema = z
  .object({
    user: z.string().min(1),
    steps: z.array(StepSchema).default([]),
    final: z.string().default("Done."),
    /**
     * A later turn normally starts at once (the brain sends its `user` text). With `await_user`
     * the session goes idle and sleeps until a user.message arrives (from the API or the
     * control surface): for tests of sessions that end their work item and wake later.
     */
    await_user: z.boolean().default(false),
  })
  .strict();

const CustomToolSchema = z
  .object({
    name: z.string().min(1),
    description: z.string().default(""),
    input_schema: z.record(z.string(), z.unknown()).default({ type: "object" }),
  })
  .strict();

export const ScenarioSchema = z
  .object({
    name: z.string().min(1),
    description: z.string().optional(),
    custom_tools: z.array(CustomToolSchema).default([]),
    turns: z.array(TurnSchema).min(1),
    end: z.enum(["idle", "terminate"]).default("idle"),
  })
  .strict()
  .superRefine((s, ctx) => {
    const custom = new Set(s.custom_tools.map((t) => t.name));
    s.turns.forEach((turn, ti) =>
      turn.steps.forEach((step, si) =>
        step.calls.forEach((call, ci) => {
          const path = ["turns", ti, "steps", si, "calls", ci];
          if (call.custom && !custom.has(call.name)) {
            ctx.addIssue({ code: "custom", path, message: `custom call "${call.name}" is not declared in custom_tools` });
          }
          if (call.custom && call.permission !== "allow") {
            ctx.addIssue({ code: "custom", path, message: "custom tool calls carry no permission; use allow" });
          }
          if (call.auto_confirm && call.permission !== "ask") {
            ctx.addIssue({ code: "custom", path, message: "auto_confirm only applies to permission ask" });
          }
          if (call.expect?.matches !== undefined) {
            try {
              new RegExp(call.expect.matches);
            } catch (e) {
              ctx.addIssue({ code: "custom", path: [...path, "expect", "matches"], message: `bad regex: ${String(e)}` });
            }
          }
        }),
      ),
    );
  });

/** A scenario as written (defaults optional). */
export type Scenario = z.input<typeof ScenarioSchema>;
/** A scenario after validation (defaults filled in). */
export type ParsedScenario = z.output<typeof ScenarioSchema>;
export type ScenarioCall = ParsedScenario["turns"][number]["steps"][number]["calls"][number];

/** Validate a scenario; throws an Error naming each bad field. */
export function parseScenario(input: unknown): ParsedScenario {
  const r = ScenarioSchema.safeParse(input);
  if (!r.success) {
    const why = r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw new Error(`invalid scenario: ${why}`);
  }
  return r.data;
}

/** Text of a result's content: string as is, text blocks joined with "\n". */
export function resultText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .map((b) => (typeof b === "object" && b !== null && (b as { type?: unknown }).type === "text" ? String((b as { text?: unknown }).text ?? "") : ""))
    .filter((t) => t !== "")
    .join("\n");
}

/** Why a result fails a call's `expect`, or null when it passes. */
export function checkExpect(call: ScenarioCall, isError: boolean, content: unknown): string | null {
  const e = call.expect;
  if (!e) return null;
  const text = resultText(content);
  const why: string[] = [];
  if (e.is_error !== undefined && e.is_error !== isError) why.push(`is_error ${isError}, expected ${e.is_error}`);
  if (e.contains !== undefined && !text.includes(e.contains)) why.push(`text does not contain ${JSON.stringify(e.contains)}`);
  if (e.matches !== undefined && !new RegExp(e.matches).test(text)) why.push(`text does not match /${e.matches}/`);
  if (e.equals !== undefined && text !== e.equals) why.push(`text is not equal to ${JSON.stringify(e.equals)}`);
  if (why.length === 0) return null;
  const shown = text.length > 200 ? `${text.slice(0, 200)}...` : text;
  return `${why.join(", ")} (got ${JSON.stringify(shown)})`;
}
