/**
 * `decide(request, policy, session)`: may this request leave the sandbox, to where, and with
 * which credentials? A pure function (no clock, no I/O, never throws): every runtime and tier
 * gets the same answer, and the conformance table (conformance.ts) proves it in each.
 *
 * In order:
 *  1. Only http: and https: URLs (anything else: deny, rule "scheme"); a host that does not
 *     normalise: deny, rule "host". These two are not shadowed: nothing could be sent.
 *     The port is the URL's, or 80/443 from the scheme.
 *  2. Services. A host `<name>.svc`, or a bare `<name>` without dots, where `<name>` is in
 *     `services`, is that service: the target is the service URL with the request's path joined
 *     under the service URL's path, and the request's query (the request's own scheme and port
 *     are ignored). A `.svc` host that names no service: deny, rule "services".
 *  3. Deny rules win over everything (unrestricted networking and services included): the first
 *     deny rule whose hosts cover the request (for a service: `<name>.svc` or the service URL's
 *     host), whose methods include its method and whose paths match its path denies it, rule =
 *     the rule's name or `deny[i]`. A deny rule with paths denies a path that cannot be matched
 *     safely (see paths.ts: encoded slashes, dot segments, ...): rules must not be bypassable by
 *     encoding.
 *  4. Allow. A service allows itself (rule `services.<name>`) when its methods and paths match;
 *     otherwise deny with that rule. A service path that cannot be matched safely is always
 *     refused (it would escape the service URL's path). Other requests, the first that matches:
 *     `unrestricted` ("networking.unrestricted"); `allowed_hosts` ("networking.allowed_hosts");
 *     the package registries when `allow_package_managers` ("networking.allow_package_managers",
 *     list in packages.ts); the session's MCP server hosts when `allow_mcp_servers`
 *     ("networking.allow_mcp_servers"); each allow rule (its name or `allow[i]`) whose hosts,
 *     methods and paths match. An allow rule with paths whose host and method match but whose
 *     path cannot be matched safely denies, with that rule, unless something else allows.
 *     Nothing matched: deny, rule "default".
 *  5. Credentials, for an allowed request. Bound credentials are those whose hosts cover the
 *     target (for a service: `<name>.svc` or the service URL's host); `decision.credentials`
 *     lists them (the gateway injects those whose placeholder appears, and scans the body for
 *     the others' placeholders). A placeholder in `request.placeholders` of a credential that is
 *     not bound here: deny, rule `credentials.<NAME>`. A bound credential with `require: true`
 *     whose placeholder is absent: deny, rule `credentials.<NAME>`. Placeholders of names the
 *     policy does not declare are plain text and ignored.
 *  6. CONNECT (`via: "connect"`, host and port only; the proxy cannot see inside): a deny rule
 *     covering the host denies the tunnel even if it has methods or paths (fail closed); only a
 *     host-level allow opens one (unrestricted, allowed_hosts, package registries, MCP hosts, an
 *     allow rule without methods and paths); a service is never reached through a tunnel; a
 *     host bound to a `require` credential is denied (it cannot be injected into a tunnel), and
 *     a tunnel carries no credentials.
 *  7. Shadow mode: a deny becomes `allowed: true, shadow: true`, with the rule and reason of what
 *     would have denied, and the credentials bound to the target (the request goes out).
 *
 * Reasons name hosts, ports, methods, rules and credential names; never a path, a query or a
 * secret (paths and queries can carry tokens).
 */
import { portOf, type CompiledPolicy, type CompiledRule, type CompiledService } from "./compile.ts";
import { compileHostPattern, normalizeHost, type HostMatcher, type NormalizedHost } from "./host.ts";
import { pathProblem, type PathCheck } from "./paths.ts";
import type { Decision, EgressRequest, SessionContext } from "./types.ts";

/** A name the request is known by, with its port: what host patterns are matched against. */
interface Subject {
  host: NormalizedHost;
  port: number;
}

/** "host:port", with brackets around IPv6. */
function hostPort(s: Subject): string {
  return `${s.host.kind === "ipv6" ? `[${s.host.host}]` : s.host.host}:${s.port}`;
}

function coversAny(hosts: readonly HostMatcher[], subjects: readonly Subject[]): HostMatcher | undefined {
  for (const h of hosts) for (const s of subjects) if (h.matches(s.host, s.port)) return h;
  return undefined;
}

/** Which service a host names: the service, a `.svc` name nothing declares, or none. */
function serviceOf(host: NormalizedHost, policy: CompiledPolicy): { service: CompiledService } | { unknown: string } | undefined {
  if (host.kind !== "name") return undefined;
  if (host.host.endsWith(".svc")) {
    const name = host.host.slice(0, -".svc".length);
    const service = policy.services.get(name);
    return service ? { service } : { unknown: name };
  }
  if (!host.host.includes(".")) {
    const service = policy.services.get(host.host);
    if (service) return { service };
  }
  return undefined;
}

/** The service URL with the request's path joined under its path, and the request's query. */
function serviceTarget(service: CompiledService, url: URL): URL {
  return new URL(`${service.url.origin}${service.basePath}${url.pathname}${url.search}`);
}

/** The session's MCP server hosts as patterns; entries that are not valid hosts are skipped. */
function mcpMatchers(session: SessionContext): HostMatcher[] {
  const out: HostMatcher[] = [];
  for (const h of session.mcpServerHosts ?? []) {
    try {
      out.push(compileHostPattern(h));
    } catch {
      // Not a host: it can match nothing.
    }
  }
  return out;
}

/** Decide one request. See the top of this file for the rules, in order. */
export function decide(req: EgressRequest, policy: CompiledPolicy, session: SessionContext): Decision {
  const url = req.url;
  const method = req.method.toUpperCase();
  const connect = req.via === "connect";

  // 1. Scheme and host: not shadowed (nothing could be sent).
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return { allowed: false, verdict: "deny", shadow: false, rule: "scheme", reason: `only http and https requests may leave the sandbox, not ${url.protocol}`, target: url, credentials: [], privateAddressAllowed: false };
  }
  let host: NormalizedHost;
  try {
    host = normalizeHost(url.hostname);
  } catch (e) {
    return { allowed: false, verdict: "deny", shadow: false, rule: "host", reason: e instanceof Error ? e.message : "invalid host", target: url, credentials: [], privateAddressAllowed: false };
  }
  const requested: Subject = { host, port: portOf(url) };
  const where = hostPort(requested);

  // 2. Services.
  const named = serviceOf(host, policy);
  const service = named && "service" in named ? named.service : undefined;
  const target = service ? serviceTarget(service, url) : url;
  const subjects: Subject[] = service ? [{ host: { kind: "name", host: `${service.name}.svc` }, port: requested.port }, { host: service.host, port: service.port }] : [requested];
  const bound = policy.credentials.filter((c) => coversAny(c.hosts, subjects));

  let checkedPath: PathCheck | undefined;
  const path = (): PathCheck => (checkedPath ??= pathProblem(url.pathname));

  const base = { target, privateAddressAllowed: service !== undefined, ...(service ? { service: service.name } : {}) };
  const deny = (rule: string, reason: string): Decision => ({
    ...base,
    allowed: policy.shadow,
    verdict: "deny",
    shadow: policy.shadow,
    rule,
    reason,
    // In shadow mode the request goes out: the credentials bound to its target go with it.
    credentials: policy.shadow && !connect ? bound.map((c) => c.name) : [],
  });

  if (named && "unknown" in named) {
    const declared = [...policy.services.keys()];
    return deny("services", `no service is named ${JSON.stringify(named.unknown)} (${declared.length ? `services: ${declared.join(", ")}` : "the policy declares no services"})`);
  }

  // 3. Deny rules win.
  for (const rule of policy.deny) {
    if (!coversAny(rule.hosts, subjects)) continue;
    if (connect) {
      const detail = rule.methods || rule.paths ? " (its methods and paths cannot be checked inside a tunnel)" : "";
      return deny(rule.name, `deny rule ${rule.name} covers ${where}${detail}`);
    }
    if (rule.methods && !rule.methods.has(method)) continue;
    if (rule.paths) {
      const p = path();
      if (!p.ok) return deny(rule.name, `${p.problem}, and deny rule ${rule.name} has paths for ${where}: refused`);
      if (!rule.paths.matches(p.decoded)) continue;
    }
    return deny(rule.name, `deny rule ${rule.name} matches ${method} ${where}`);
  }

  // 4. Allow.
  let allowedBy: { rule: string; reason: string };
  if (service) {
    const rule = `services.${service.name}`;
    if (connect) return deny(rule, `service ${service.name} is reached with plain requests (http://${service.name}.svc/...), not through a CONNECT tunnel`);
    if (service.methods && !service.methods.has(method)) return deny(rule, `service ${service.name} does not allow ${method} (only ${[...service.methods].join(", ")})`);
    const p = path();
    if (!p.ok) return deny(rule, `${p.problem}: refused for service ${service.name}`);
    if (service.paths && !service.paths.matches(p.decoded)) return deny(rule, `the path is not one of service ${service.name}'s paths (${service.paths.patterns.join(", ")})`);
    allowedBy = { rule, reason: `private service ${service.name}` };
  } else {
    const found = findAllow(policy, session, requested, method, connect, path);
    if ("denied" in found) return deny(found.denied.rule, found.denied.reason);
    allowedBy = found;
  }

  // 5. Credentials.
  for (const name of req.placeholders) {
    const credential = policy.credentials.find((c) => c.name === name);
    if (credential && !bound.includes(credential)) {
      return deny(`credentials.${name}`, `the request carries the placeholder of credential ${name}, which is bound to other hosts, not ${where}`);
    }
  }
  for (const c of bound) {
    if (!c.require) continue;
    if (connect) return deny(`credentials.${c.name}`, `${where} requires credential ${c.name}, which cannot be injected into a CONNECT tunnel`);
    if (!req.placeholders.includes(c.name)) return deny(`credentials.${c.name}`, `requests to ${where} must carry the placeholder of credential ${c.name} (DEFT_SECRET_${c.name})`);
  }

  return {
    ...base,
    allowed: true,
    verdict: "allow",
    shadow: false,
    rule: allowedBy.rule,
    reason: allowedBy.reason,
    credentials: connect ? [] : bound.map((c) => c.name),
  };
}

/** Step 4 for a request that names no service: what allows it, or the deny to return. */
function findAllow(
  policy: CompiledPolicy,
  session: SessionContext,
  requested: Subject,
  method: string,
  connect: boolean,
  path: () => PathCheck,
): { rule: string; reason: string } | { denied: { rule: string; reason: string } } {
  const where = hostPort(requested);
  const subjects = [requested];
  if (policy.unrestricted) return { rule: "networking.unrestricted", reason: "networking is unrestricted" };
  const listed = coversAny(policy.allowedHosts, subjects);
  if (listed) return { rule: "networking.allowed_hosts", reason: `${where} is allowed by networking.allowed_hosts (${listed.pattern})` };
  if (coversAny(policy.packageHosts, subjects)) return { rule: "networking.allow_package_managers", reason: `${where} is a package registry (networking.allow_package_managers)` };
  if (policy.allowMcpServers) {
    const mcp = coversAny(mcpMatchers(session), subjects);
    if (mcp) return { rule: "networking.allow_mcp_servers", reason: `${where} is one of the session's MCP servers (networking.allow_mcp_servers)` };
  }
  let unsafePath: { rule: CompiledRule; problem: string } | undefined;
  let tunnelNeedsMore: CompiledRule | undefined;
  for (const rule of policy.allow) {
    if (!coversAny(rule.hosts, subjects)) continue;
    if (connect) {
      if (!rule.methods && !rule.paths) return { rule: rule.name, reason: `allow rule ${rule.name} covers ${where}` };
      tunnelNeedsMore ??= rule;
      continue;
    }
    if (rule.methods && !rule.methods.has(method)) continue;
    if (rule.paths) {
      const p = path();
      if (!p.ok) {
        unsafePath ??= { rule, problem: p.problem };
        continue;
      }
      if (!rule.paths.matches(p.decoded)) continue;
    }
    return { rule: rule.name, reason: `allow rule ${rule.name} matches ${method} ${where}` };
  }
  if (unsafePath) return { denied: { rule: unsafePath.rule.name, reason: `${unsafePath.problem}, and allow rule ${unsafePath.rule.name} allows only some paths of ${where}: refused` } };
  if (tunnelNeedsMore) {
    return { denied: { rule: "default", reason: `no rule allows a tunnel to ${where}: allow rule ${tunnelNeedsMore.name} has methods or paths, which cannot be checked inside a tunnel` } };
  }
  return { denied: { rule: "default", reason: `no rule allows ${method} ${where}` } };
}
