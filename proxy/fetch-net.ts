/**
 * An `EgressNet` over a platform `fetch`, for runtimes that cannot resolve names or pin an
 * address (Cloudflare Workers). The gateway still decides every request, checks address
 * literals in every spelling, re-checks each redirect and injects and redacts credentials; what
 * it cannot do here is see the address a name resolves to. On Cloudflare the platform's own
 * guarantee covers that: a Worker's `fetch` goes out through Cloudflare's edge to the public
 * Internet and cannot reach the account's private networks or the machine it runs on unless a
 * binding (a VPC service, Tunnel) is configured, and it has no link-local metadata service.
 * Under workerd run elsewhere (miniflare, self-hosted) there is no such guarantee: use the
 * Node, Deno or Bun shim's network there.
 */
import type { EgressNet, PinnedTarget } from "./net.ts";

export function fetchEgressNet(platformFetch: typeof fetch = fetch): EgressNet {
  return {
    request(_target: PinnedTarget, req: Request, signal: AbortSignal): Promise<Response> {
      return platformFetch(new Request(req, { redirect: "manual", signal }));
    },
  };
}
