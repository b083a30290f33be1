/** The session object (spec §5): only the fields the worker reads are required. */
import { z } from "zod";

export const SessionSchema = z.looseObject({
  id: z.string().min(1),
  type: z.literal("session").optional(),
  environment_id: z.string().optional(),
  status: z.string(), // "idle" | "running" | "rescheduling" | "terminated", open set
  agent: z
    .looseObject({
      id: z.string().optional(),
      tools: z.array(z.looseObject({ type: z.string() })).optional(),
    })
    .optional(),
  archived_at: z.string().nullable().optional(),
});
export type Session = z.infer<typeof SessionSchema>;

export function isTerminated(session: Session): boolean {
  return session.status === "terminated" || !!session.archived_at;
}
