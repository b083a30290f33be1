/**
 * `parsePolicy(json)`: a policy file's parsed JSON to a compiled policy, or a PolicyError with
 * one `path: message` line per problem (schema problems first; the compile step's checks run
 * only on a policy that matches the schema).
 */
import type { z } from "zod";
import { compilePolicy, type CompiledPolicy } from "./compile.ts";
import { PolicyError } from "./policy-error.ts";
import { PolicySchema } from "./schema.ts";

/** A field path as written in messages: `allow[0].hosts[1]`, `services.billing.url`, `(root)`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else if (typeof key === "string" && /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) out += out ? `.${key}` : key;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out || "(root)";
}

/** Clearer words for the schema's unions, whose own message is only "Invalid input". */
const UNION_HINTS: Record<string, string> = {
  secret: 'expected {"env": "VARIABLE"}, {"file": "PATH"} or {"resolver": "NAME", "key": "KEY"}',
};

function issueLine(issue: z.core.$ZodIssue): string {
  const path = formatPath(issue.path);
  let message = issue.message;
  if (issue.code === "invalid_key" && issue.issues[0]) message = `${message}: ${issue.issues[0].message}`;
  if (issue.code === "invalid_union") {
    const last = issue.path[issue.path.length - 1];
    const hint = typeof last === "string" ? UNION_HINTS[last] : undefined;
    if (hint) message = `${message}: ${hint}`;
  }
  return `${path}: ${message}`;
}

/** The schema's problems with `json`, one `path: message` line each; empty when it matches. */
export function policyIssues(json: unknown): string[] {
  const r = PolicySchema.safeParse(json);
  return r.success ? [] : r.error.issues.map(issueLine);
}

/**
 * Parse and compile a policy (the JSON value of a policy file). Throws a PolicyError whose
 * `issues` are `path: message` lines.
 */
export function parsePolicy(json: unknown): CompiledPolicy {
  const r = PolicySchema.safeParse(json);
  if (!r.success) throw new PolicyError(r.error.issues.map(issueLine));
  return compilePolicy(r.data);
}
