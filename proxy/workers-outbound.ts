/**
 * The Workers face of the gateway: the handler behind a dynamic isolate's `globalOutbound`.
 * Every `fetch()` (and `connect()`, which Workers routes to the same place) the isolate makes
 * arrives here as a whole request; the gateway decides it for the session the isolate was
 * loaded for. A parent Worker exports an entrypoint whose `fetch` calls this with the session
 * it put in the entrypoint's props (runtimes/workers/parent-worker.ts does, in the local
 * shim through the host; a deployment calls it in the parent Worker itself).
 */
import type { SessionContext } from "../core/policy/types.ts";
import type { Gateway } from "./gateway.ts";

/** What a parent Worker passes as the outbound entrypoint's props. */
export interface OutboundProps {
  sessionId: string;
  toolUseId?: string;
}

export function workersOutbound(gateway: Gateway, tier = "workers-loader"): (req: Request, props: OutboundProps) => Promise<Response> {
  return (req, props) => {
    const session: SessionContext = { sessionId: props.sessionId, tier, ...(props.toolUseId ? { toolUseId: props.toolUseId } : {}) };
    return gateway.fetch(req, session, "workers");
  };
}
