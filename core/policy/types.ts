/**
 * What the policy engine decides over: a request as the sandbox made it, the session it came
 * from, and the decision. `decide(request, policy, session)` is a pure function of the three so
 * that every runtime and tier gets the same answer (the conformance table checks it).
 */

/** The session a request belongs to: who to charge it to in the audit, and what it may reach. */
export interface SessionContext {
  sessionId: string;
  /** The tool call that made the request, when known. */
  toolUseId?: string;
  /** The tier the request came from: "deno-subprocess", "workers-loader", "process", ... */
  tier: string;
  /** Hosts of the agent's MCP servers (reachable when `allow_mcp_servers`). */
  mcpServerHosts?: readonly string[];
}

/** How the request reached the gateway. */
export type EgressVia =
  | "fetch" // an isolate's fetch stub, whole request visible
  | "proxy" // plain HTTP through the forward proxy, whole request visible
  | "connect" // a CONNECT tunnel: host and port only
  | "workers"; // a Workers isolate's globalOutbound

export interface EgressRequest {
  method: string;
  /** As requested: for a service this is its name (`http://billing.svc/...`), not its address. */
  url: URL;
  via: EgressVia;
  /** Credential names whose placeholder appears in the headers or query (the body is scanned as it streams). */
  placeholders: readonly string[];
}

export interface Decision {
  /** What happens: true when the policy allows it, or denies it in shadow mode. */
  allowed: boolean;
  /** What the policy says. */
  verdict: "allow" | "deny";
  /** Denied by the policy but allowed because the policy is in shadow mode. */
  shadow: boolean;
  /** The rule that decided: "deny[0]", "github-write" (a rule's name), "networking.allowed_hosts", "services.billing", "credentials.GITHUB", "default". */
  rule: string;
  /** One line, for the audit record and the sandbox's error message. Never contains a secret. */
  reason: string;
  /** Where to connect: the request's URL, or the service's URL with the request's path appended. */
  target: URL;
  /** Set when the request named a private service. */
  service?: string;
  /** Credentials bound to the target that may be injected (those whose placeholder is present or may appear in the body). */
  credentials: readonly string[];
  /** The target may be a private address because a private service names it. */
  privateAddressAllowed: boolean;
}

/** The address check's answer for one resolved address. */
export interface AddressVerdict {
  ok: boolean;
  /** "public", "loopback", "private", "link-local", "metadata", "cgnat", "multicast", "unspecified", "reserved", ... */
  class: string;
  reason: string;
}
