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
      /** The agent's MCP servers: their hosts are reachable when the policy has `allow_mcp_servers`. */
      mcp_servers: z.array(z.looseObject({ url: z.string().optional() })).optional(),
    })
    .optional(),
  archived_at: z.string().nullable().optional(),
});
export type Session = z.infer<typeof SessionSchema>;

export function isTerminated(session: Session): boolean {
  return session.status === "terminated" || !!session.archived_at;
}

/** Hosts of the session's agent's MCP servers (URLs that do not parse are left out). */
export function mcpServerHosts(session: Session): string[] {
  const hosts: string[] = [];
  for (const s of session.agent?.mcp_servers ?? []) {
    if (!s.url) continue;
    try {
      hosts.push(new URL(s.url).host);
    } catch {
      // not a URL: nothing to allow
    }
  }
  return hosts;
}
