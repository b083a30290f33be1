/**
 * `call_service`: a private service by name. The policy maps each name to an internal URL the
 * sandbox never sees; the call goes through the gateway like any other request (decided, with
 * credentials injected where bound, audited), so a service is reached this way or as
 * `http://<name>.svc/...` from a snippet's fetch, and never by its address.
 */
import { z } from "zod";
import type { Egress } from "../core/egress.ts";
import type { SessionContext } from "../core/policy/types.ts";
import { defineTool, ToolError, type Tool } from "../core/router/tool.ts";

/** Characters of a response body returned to the agent; the rest is cut with a note. */
export const CALL_SERVICE_MAX_CHARS = 100_000;

export function callServiceTool(egress: Pick<Egress, "policy" | "gateway">, session: Omit<SessionContext, "toolUseId">): Tool {
  const services = egress.policy.policy.services;
  const names = Object.keys(services);
  const list = names.map((n) => `- ${n}${services[n]!.description ? `: ${services[n]!.description}` : ""}`).join("\n");
  return defineTool({
    name: "call_service",
    description: `Call a private service of this environment over HTTP. Services:\n${list}\nReturns the status line, the content type and the body as text.`,
    input: z.object({
      service: z.enum(names as [string, ...string[]]),
      method: z.string().regex(/^[A-Za-z]+$/).default("GET"),
      path: z.string().regex(/^\//, "path starts with /").default("/"),
      headers: z.record(z.string(), z.string()).optional(),
      body: z.string().optional(),
    }),
    run: async ({ service, method, path, headers, body }, ctx) => {
      const init: RequestInit = { method: method.toUpperCase(), signal: ctx.signal, redirect: "follow" };
      if (headers) init.headers = headers;
      if (body !== undefined) init.body = body;
      const res = await egress.gateway.fetch(new Request(`http://${service}.svc${path}`, init), { ...session, toolUseId: ctx.toolUseId }, "fetch");
      let text = await res.text();
      if (res.headers.get("x-deft-egress") === "denied") throw new ToolError(text.trim());
      if (text.length > CALL_SERVICE_MAX_CHARS) text = `${text.slice(0, CALL_SERVICE_MAX_CHARS)}\n[cut at ${CALL_SERVICE_MAX_CHARS} characters]`;
      const type = res.headers.get("content-type");
      return `HTTP ${res.status} ${res.statusText}${type ? `\ncontent-type: ${type}` : ""}\n\n${text}`;
    },
  });
}
