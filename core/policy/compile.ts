/**
 * A parsed policy compiled for `decide`: every host and path pattern compiled once, rule names
 * filled in, and the cross-references checked. Every problem is reported (not just the first),
 * each as `field.path: what is wrong`, in one PolicyError.
 *
 * Checks beyond the schema:
 *   - every host pattern and path pattern is valid;
 *   - `allowed_hosts` and allow rules name no private or other non-public address literal
 *     (the address check would refuse it: reach it through a service instead);
 *   - a service is named `<name>.svc` in patterns: the bare name is refused (ambiguous), and
 *     `allowed_hosts` / allow rules may not name a service at all (declaring it allows it);
 *     a `.svc` pattern must name a declared service;
 *   - a service URL is http(s), without user info, query or fragment;
 *   - credential names are unique, a credential is never bound to every host (`*`), and a
 *     required credential is carried in a header or the query (the body is scanned only after
 *     the decision, so `require` cannot see it there);
 *   - rule names are unique across `allow` and `deny`, and none is a name the engine uses itself
 *     ("default", "networking.*", "services.*", "credentials.*", "allow[i]", ...): audit records
 *     name the rule that decided.
 */
import { classifyAddress } from "./address.ts";
import { compileHostPattern, normalizeHost, type HostMatcher, type NormalizedHost } from "./host.ts";
import { PACKAGE_MANAGER_HOSTS } from "./packages.ts";
import { compilePaths, type PathMatcher } from "./paths.ts";
import { PolicyError } from "./policy-error.ts";
import type { Credential, Policy, Rule } from "./schema.ts";

/** An allow or deny rule, ready to match. */
export interface CompiledRule {
  /** The rule's name, or `allow[i]` / `deny[i]`. */
  name: string;
  hosts: readonly HostMatcher[];
  /** Upper case; undefined: any method. */
  methods?: ReadonlySet<string>;
  /** Undefined: any path. */
  paths?: PathMatcher;
}

/** A private service, ready to route to. */
export interface CompiledService {
  name: string;
  url: URL;
  /** The service URL's host, normalised. */
  host: NormalizedHost;
  /** The service URL's port (or its scheme's default). */
  port: number;
  /** The service URL's path without its trailing slash ("" for the root): requests are joined under it. */
  basePath: string;
  methods?: ReadonlySet<string>;
  paths?: PathMatcher;
}

/** A credential's binding, ready to match. */
export interface CompiledCredential {
  name: string;
  hosts: readonly HostMatcher[];
  require: boolean;
  in: Credential["in"];
}

/** What `decide` works from. `policy` is the parsed source (limits, secrets, descriptions). */
export interface CompiledPolicy {
  policy: Policy;
  /** mode "shadow": denials are audited but let through. */
  shadow: boolean;
  /** networking "unrestricted": every host is allowed (deny rules still win). */
  unrestricted: boolean;
  allowedHosts: readonly HostMatcher[];
  /** The package registries' hosts, when `allow_package_managers`; otherwise empty. */
  packageHosts: readonly HostMatcher[];
  allowMcpServers: boolean;
  allow: readonly CompiledRule[];
  deny: readonly CompiledRule[];
  services: ReadonlyMap<string, CompiledService>;
  credentials: readonly CompiledCredential[];
}

/** The default port of an http(s) URL's scheme. */
export function defaultPort(protocol: string): number {
  return protocol === "https:" ? 443 : 80;
}

/** The port a URL connects to. */
export function portOf(url: URL): number {
  return url.port ? Number(url.port) : defaultPort(url.protocol);
}

const SVC_SUFFIX = ".svc";

/** Which side of the policy a host pattern sits on; decides which cross-checks apply. */
type PatternSide = "allow" | "deny" | "credential";

/**
 * Compile a parsed policy (the output of `PolicySchema`). Throws a PolicyError listing every
 * problem, each starting with the field's path.
 */
export function compilePolicy(policy: Policy): CompiledPolicy {
  const issues: string[] = [];
  const serviceNames = new Set(Object.keys(policy.services));

  const hostPattern = (pattern: string, path: string, side: PatternSide): HostMatcher | undefined => {
    let m: HostMatcher;
    try {
      m = compileHostPattern(pattern);
    } catch (e) {
      issues.push(`${path}: ${messageOf(e)}`);
      return undefined;
    }
    const problem = crossCheckPattern(pattern, side, serviceNames);
    if (problem) {
      issues.push(`${path}: ${problem}`);
      return undefined;
    }
    return m;
  };

  const hostPatterns = (patterns: readonly string[], path: string, side: PatternSide): HostMatcher[] =>
    patterns.flatMap((p, i) => hostPattern(p, `${path}[${i}]`, side) ?? []);

  const paths = (patterns: readonly string[] | undefined, path: string): PathMatcher | undefined => {
    if (!patterns) return undefined;
    try {
      return compilePaths(patterns);
    } catch (e) {
      issues.push(`${path}: ${messageOf(e)}`);
      return undefined;
    }
  };

  const ruleNames = new Map<string, string>();
  const rules = (list: readonly Rule[], field: "allow" | "deny"): CompiledRule[] =>
    list.map((r, i) => {
      const name = r.name ?? `${field}[${i}]`;
      const earlier = ruleNames.get(name);
      if (r.name !== undefined && isReservedRuleName(r.name)) issues.push(`${field}[${i}].name: ${JSON.stringify(r.name)} is reserved for the engine's own decisions (audit records would be ambiguous)`);
      else if (earlier) issues.push(`${field}[${i}].name: ${JSON.stringify(name)} is already the name of ${earlier}`);
      else ruleNames.set(name, `${field}[${i}]`);
      const compiled: CompiledRule = { name, hosts: hostPatterns(r.hosts, `${field}[${i}].hosts`, field === "allow" ? "allow" : "deny") };
      if (r.methods) compiled.methods = new Set(r.methods);
      const p = paths(r.paths, `${field}[${i}].paths`);
      if (p) compiled.paths = p;
      return compiled;
    });

  const net = policy.networking;
  const limited = net.type === "limited" ? net : undefined;
  const allowedHosts = limited ? hostPatterns(limited.allowed_hosts, "networking.allowed_hosts", "allow") : [];
  const allow = rules(policy.allow, "allow");
  const deny = rules(policy.deny, "deny");

  const services = new Map<string, CompiledService>();
  for (const [name, s] of Object.entries(policy.services)) {
    const field = `services.${name}`;
    const service = compileService(name, s.url, `${field}.url`, issues);
    if (!service) continue;
    if (s.methods) service.methods = new Set(s.methods);
    const p = paths(s.paths, `${field}.paths`);
    if (p) service.paths = p;
    services.set(name, service);
  }

  const credentialNames = new Set<string>();
  const credentials: CompiledCredential[] = policy.credentials.map((c, i) => {
    const field = `credentials[${i}]`;
    if (credentialNames.has(c.name)) issues.push(`${field}.name: there is already a credential named ${c.name}`);
    credentialNames.add(c.name);
    if (c.require && !c.in.includes("header") && !c.in.includes("query")) {
      issues.push(`${field}.require: a required credential must be carried in a header or the query (the body is scanned only after the decision)`);
    }
    return { name: c.name, hosts: hostPatterns(c.hosts, `${field}.hosts`, "credential"), require: c.require, in: c.in };
  });

  if (issues.length) throw new PolicyError(issues);
  return {
    policy,
    shadow: policy.mode === "shadow",
    unrestricted: net.type === "unrestricted",
    allowedHosts,
    packageHosts: limited?.allow_package_managers ? PACKAGE_MANAGER_HOSTS.map(compileHostPattern) : [],
    allowMcpServers: limited?.allow_mcp_servers ?? false,
    allow,
    deny,
    services,
    credentials,
  };
}

/** Rule names the engine and the gateway use for their own decisions (`Decision.rule`, audit records). */
const RESERVED_RULE_NAMES = new Set(["default", "scheme", "host", "services", "credentials", "address", "gateway", "body", "redirect"]);

function isReservedRuleName(name: string): boolean {
  return RESERVED_RULE_NAMES.has(name) || /^(networking|services|credentials|limits)\./.test(name) || /^(allow|deny)\[\d+\]$/.test(name);
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The host part of a (valid) pattern, lower case, without port or trailing dot. */
function patternHost(pattern: string): string {
  if (pattern.startsWith("[")) return "";
  const colons = pattern.split(":").length - 1;
  const host = colons === 1 ? pattern.slice(0, pattern.indexOf(":")) : pattern;
  return host.toLowerCase().replace(/\.$/, "");
}

/** What is wrong with a valid pattern given where it sits, or undefined. */
function crossCheckPattern(pattern: string, side: PatternSide, serviceNames: ReadonlySet<string>): string | undefined {
  const host = patternHost(pattern);
  if (side === "credential" && host === "*") return "a credential cannot be bound to every host (*): name the hosts it is for";
  if (serviceNames.has(host)) return `${JSON.stringify(host)} is the name of a service: write ${JSON.stringify(`${host}${SVC_SUFFIX}`)}`;
  if (host.endsWith(SVC_SUFFIX)) {
    const name = host.slice(0, -SVC_SUFFIX.length);
    if (!serviceNames.has(name)) return `${JSON.stringify(host)} names service ${JSON.stringify(name)}, which services does not declare`;
    if (side === "allow") return `${JSON.stringify(host)} is a service: declaring it under services allows it (with its methods and paths)`;
  }
  if (side === "allow") {
    const literal = addressLiteral(pattern);
    if (literal) {
      const v = classifyAddress(literal);
      if (!v.ok) return `${literal} is not a public address (${v.class}) and the address check refuses it: reach it through a service`;
    }
  }
  return undefined;
}

/** The normalised address a pattern names, when it names one. */
function addressLiteral(pattern: string): string | undefined {
  try {
    let host: NormalizedHost;
    if (pattern.startsWith("[")) host = normalizeHost(pattern.slice(0, pattern.indexOf("]") + 1));
    else if (pattern.split(":").length - 1 > 1) host = normalizeHost(pattern);
    else {
      const h = patternHost(pattern);
      if (h === "*" || h.startsWith("*.")) return undefined;
      host = normalizeHost(h);
    }
    return host.kind === "name" ? undefined : host.host;
  } catch {
    return undefined;
  }
}

function compileService(name: string, raw: string, field: string, issues: string[]): CompiledService | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    issues.push(`${field}: not a URL`);
    return undefined;
  }
  const problems: string[] = [];
  if (url.protocol !== "http:" && url.protocol !== "https:") problems.push(`a service URL is http or https, not ${url.protocol}`);
  if (url.username || url.password) problems.push("a service URL carries no user or password: put secrets in credentials");
  if (url.search || url.hash) problems.push("a service URL has no query or fragment");
  let host: NormalizedHost | undefined;
  try {
    host = normalizeHost(url.hostname);
  } catch (e) {
    problems.push(messageOf(e));
  }
  if (problems.length || !host) {
    for (const p of problems) issues.push(`${field}: ${p}`);
    return undefined;
  }
  return { name, url, host, port: portOf(url), basePath: url.pathname.replace(/\/+$/, "") };
}
