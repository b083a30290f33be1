/**
 * Wire shapes of the work queue (spec §2): the work item, its `secret`, heartbeat answers.
 * Schemas are loose objects: extra fields are kept, so a newer server never breaks us.
 */
import { z } from "zod";

export const WorkStateSchema = z.string(); // "queued"|"starting"|"active"|"stopping"|"stopped", open set
export type WorkState = "queued" | "starting" | "active" | "stopping" | "stopped" | (string & {});

export const WorkDataSchema = z.looseObject({
  type: z.string().optional(),
  id: z.string(),
});

export const WorkSchema = z.looseObject({
  id: z.string().min(1),
  type: z.literal("work").optional(),
  environment_id: z.string().optional(),
  data: WorkDataSchema,
  state: WorkStateSchema.optional(),
  secret: z.string().nullable().optional(),
  metadata: z.record(z.string(), z.string()).optional(),
});
export type Work = z.infer<typeof WorkSchema>;

/** A session item is the only kind that carries tool work; anything else (healthcheck) is ack + beat + stop. */
export function isSessionWork(work: Work): boolean {
  return work.data.type === "session";
}

export const HeartbeatResponseSchema = z.looseObject({
  type: z.literal("work_heartbeat").optional(),
  last_heartbeat: z.string(),
  lease_extended: z.boolean(),
  state: WorkStateSchema,
  ttl_seconds: z.number().int(),
});
export type HeartbeatResponse = z.infer<typeof HeartbeatResponseSchema>;

export const LeaseStateSchema = z.looseObject({
  last_heartbeat: z.string().nullable().optional(),
  lease_extended: z.boolean().optional(),
  state: WorkStateSchema.optional(),
  ttl_seconds: z.number().optional(),
});

/** `error.details` of a 412 heartbeat answer. */
export const HeartbeatPreconditionDetailsSchema = z.looseObject({
  error_code: z.literal("heartbeat_precondition_failed"),
  current_state: LeaseStateSchema.optional(),
});

export const NO_HEARTBEAT = "NO_HEARTBEAT";

export const WorkSecretSchema = z.looseObject({
  sessions_token: z.string().min(1),
  api_base_url: z.string().url().optional(),
});
export type WorkSecret = z.infer<typeof WorkSecretSchema>;

/**
 * Decode the base64url JSON `secret` (spec §2.7). Untrusted input: any failure gives
 * `undefined` (the caller falls back to the environment key) and never throws.
 */
export function decodeWorkSecret(secret: string | null | undefined): WorkSecret | undefined {
  if (!secret) return undefined;
  try {
    let b64 = secret.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const json: unknown = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    const parsed = WorkSecretSchema.safeParse(json);
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Inverse of {@link decodeWorkSecret}: base64url without padding. */
export function encodeWorkSecret(secret: WorkSecret): string {
  const bytes = new TextEncoder().encode(JSON.stringify(secret));
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
