/**
 * The policy engine's conformance table: plain data (JSON-serialisable) and a runner that uses
 * only the engine, no test framework, so the same table runs in Node, Deno, Bun and workerd and
 * must give the same answers in each (core/policy/policy.test.ts runs it in all four).
 *
 * Kinds of case:
 *   decide          a policy, a session, a request → the decision's allowed/verdict/rule/shadow
 *                   (and target, credentials, service when given). Every decide case also
 *                   checks that the reason does not repeat the request's query.
 *   invalid-policy  a policy that must be refused, and a line its issues must contain
 *   host            normalizeHost: every IPv4 spelling, IPv6 forms, names, refusals
 *   authority       parseAuthority: host:port and [v6]:port
 *   match           hostMatches: wildcards, ports, literals in any spelling
 *   path            path patterns and the encoded-path refusals
 *   address         classifyAddress: the class of an address and whether it is public
 *   check-address   checkAddress: an address against a decision (private services, metadata)
 */
import { checkAddress, classifyAddress } from "./address.ts";
import { decide } from "./decide.ts";
import { hostMatches, normalizeHost, parseAuthority } from "./host.ts";
import { parsePolicy } from "./parse.ts";
import { compilePaths, pathProblem } from "./paths.ts";
import { PolicyError } from "./policy-error.ts";
import type { EgressVia } from "./types.ts";

/** A request and what the policy must decide about it. */
export interface DecideCase {
  kind: "decide";
  name: string;
  /** The policy file's JSON (before defaults). */
  policy: unknown;
  session?: { mcpServerHosts?: string[] };
  request: { method: string; url: string; via: EgressVia; placeholders: string[] };
  expect: {
    allowed: boolean;
    verdict: "allow" | "deny";
    rule: string;
    /** Default false. */
    shadow?: boolean;
    /** The target's href, when given. */
    target?: string;
    credentials?: string[];
    service?: string;
    privateAddressAllowed?: boolean;
    /** A piece of text the reason must contain. */
    reason?: string;
  };
}

/** A policy that must fail to parse, with a line its issues must contain. */
export interface InvalidPolicyCase {
  kind: "invalid-policy";
  name: string;
  policy: unknown;
  issue: string;
}

/** normalizeHost: the normal form, or a piece of the error message. */
export interface HostCase {
  kind: "host";
  input: string;
  expect: { kind: "ipv4" | "ipv6" | "name"; host: string } | { error: string };
}

/** parseAuthority with a default port. */
export interface AuthorityCase {
  kind: "authority";
  input: string;
  defaultPort: number;
  expect: { kind: "ipv4" | "ipv6" | "name"; host: string; port: number } | { error: string };
}

/** hostMatches(pattern, host, port). */
export interface MatchCase {
  kind: "match";
  pattern: string;
  host: string;
  port: number;
  matches: boolean;
}

/** A list of path patterns against a raw (encoded) pathname. */
export interface PathCase {
  kind: "path";
  patterns: string[];
  path: string;
  expect: "match" | "no-match" | "refused";
}

/** classifyAddress(ip). */
export interface AddressCase {
  kind: "address";
  ip: string;
  class: string;
  ok: boolean;
}

/** checkAddress(ip, decision) for a decision with this target and private-address flag. */
export interface CheckAddressCase {
  kind: "check-address";
  name: string;
  ip: string;
  target: string;
  privateAddressAllowed: boolean;
  ok: boolean;
}

/** One conformance case. */
export type ConformanceCase = DecideCase | InvalidPolicyCase | HostCase | AuthorityCase | MatchCase | PathCase | AddressCase | CheckAddressCase;

// ---------------------------------------------------------------------------------------------
// Policies the decide cases share.

const LIMITED = {
  networking: {
    type: "limited",
    allowed_hosts: ["api.github.com", "*.example.com", "pinned.example.org:8443", "plain.example.org:80", "93.184.216.34", "[2606:2800:220:1:248:1893:25c8:1946]", "[2001:db8::1]:8443"],
  },
};

/** Every feature at once (examples/policy.json is close to it). */
const FULL = {
  networking: { type: "limited", allowed_hosts: ["api.github.com", "api.stripe.com", "*.githubusercontent.com"], allow_package_managers: true, allow_mcp_servers: true },
  allow: [{ name: "docs-read", hosts: ["docs.example.net"], methods: ["GET", "HEAD"], paths: ["/v1/**", "/static/*"] }],
  deny: [{ name: "no-admin", hosts: ["api.github.com"], methods: ["DELETE"], paths: ["/admin/**"] }],
  services: {
    billing: { url: "http://10.0.0.5:8080/api/", methods: ["GET", "POST"], paths: ["/v1/**"] },
    inventory: { url: "https://inventory.internal:9443" },
  },
  credentials: [
    { name: "GITHUB", secret: { env: "GITHUB_TOKEN" }, hosts: ["api.github.com"], in: ["header"], require: true },
    { name: "STRIPE", secret: { env: "STRIPE_KEY" }, hosts: ["api.stripe.com"], in: ["body", "query"] },
    { name: "BILLING", secret: { file: "/run/secrets/billing" }, hosts: ["billing.svc"] },
  ],
};

const UNRESTRICTED = { networking: { type: "unrestricted" } };
const SHADOW = { ...FULL, mode: "shadow" };

function get(url: string, placeholders: string[] = []): DecideCase["request"] {
  return { method: "GET", url, via: "fetch", placeholders };
}
function req(method: string, url: string, placeholders: string[] = []): DecideCase["request"] {
  return { method, url, via: "fetch", placeholders };
}
function tunnel(authority: string): DecideCase["request"] {
  return { method: "CONNECT", url: `https://${authority}/`, via: "connect", placeholders: [] };
}
const ALLOW = (rule: string, more: Partial<DecideCase["expect"]> = {}): DecideCase["expect"] => ({ allowed: true, verdict: "allow", rule, ...more });
const DENY = (rule: string, more: Partial<DecideCase["expect"]> = {}): DecideCase["expect"] => ({ allowed: false, verdict: "deny", rule, ...more });
const SHADOWED = (rule: string, more: Partial<DecideCase["expect"]> = {}): DecideCase["expect"] => ({ allowed: true, verdict: "deny", shadow: true, rule, ...more });

function d(name: string, policy: unknown, request: DecideCase["request"], expect: DecideCase["expect"], session?: DecideCase["session"]): DecideCase {
  return { kind: "decide", name, policy, request, expect, ...(session ? { session } : {}) };
}

// ---------------------------------------------------------------------------------------------

/** What `decide` must answer. */
export const DECIDE_CASES: readonly DecideCase[] = [
  // Defaults, unrestricted, schemes.
  d("an empty policy denies everything", {}, get("https://example.com/"), DENY("default")),
  d("unrestricted allows any host", UNRESTRICTED, get("https://anything.test/x"), ALLOW("networking.unrestricted")),
  d("unrestricted still allows a bare dotless name that is no service", UNRESTRICTED, get("http://intranet/"), ALLOW("networking.unrestricted")),
  d("a deny rule wins over unrestricted", { ...UNRESTRICTED, deny: [{ hosts: ["*.evil.test"] }] }, get("https://a.evil.test/"), DENY("deny[0]")),
  d("a deny rule wins over allowed_hosts", { networking: { type: "limited", allowed_hosts: ["a.test"] }, deny: [{ name: "block-a", hosts: ["a.test"] }] }, get("https://a.test/"), DENY("block-a")),
  d("the first matching deny rule names the decision", { ...UNRESTRICTED, deny: [{ hosts: ["b.test"] }, { hosts: ["a.test"], methods: ["POST"] }, { name: "all-a", hosts: ["a.test"] }] }, get("https://a.test/"), DENY("all-a")),
  d("ftp: is refused even when unrestricted", UNRESTRICTED, get("ftp://example.com/file"), DENY("scheme")),
  d("ws: is refused", UNRESTRICTED, get("ws://example.com/socket"), DENY("scheme")),
  d("a non-http scheme is not shadowed", { ...UNRESTRICTED, mode: "shadow" }, get("file:///etc/passwd"), DENY("scheme")),

  // allowed_hosts: names, wildcards, ports.
  d("an allowed host", LIMITED, get("https://api.github.com/user"), ALLOW("networking.allowed_hosts", { target: "https://api.github.com/user", credentials: [] })),
  d("host names compare case-insensitively, without a trailing dot", LIMITED, get("https://API.GitHub.COM./user"), ALLOW("networking.allowed_hosts")),
  d("a subdomain of an exact host is not allowed", LIMITED, get("https://x.api.github.com/"), DENY("default")),
  d("*.example.com allows a subdomain", LIMITED, get("https://a.example.com/"), ALLOW("networking.allowed_hosts")),
  d("*.example.com allows a deep subdomain", LIMITED, get("https://a.b.example.com/"), ALLOW("networking.allowed_hosts")),
  d("*.example.com does not allow example.com itself", LIMITED, get("https://example.com/"), DENY("default")),
  d("*.example.com does not allow evilexample.com", LIMITED, get("https://evilexample.com/"), DENY("default")),
  d("*.example.com does not allow example.com.evil.test", LIMITED, get("https://example.com.evil.test/"), DENY("default")),
  d("a host:port pattern allows that port", LIMITED, get("https://pinned.example.org:8443/"), ALLOW("networking.allowed_hosts")),
  d("a host:port pattern refuses the default port", LIMITED, get("https://pinned.example.org/"), DENY("default")),
  d("http: defaults to port 80", LIMITED, get("http://plain.example.org/"), ALLOW("networking.allowed_hosts")),
  d("https: defaults to port 443", LIMITED, get("https://plain.example.org/"), DENY("default")),
  d("an explicit default port is the same port", LIMITED, get("http://plain.example.org:80/"), ALLOW("networking.allowed_hosts")),
  d("a host without a port allows any port", LIMITED, get("https://api.github.com:8443/"), ALLOW("networking.allowed_hosts")),
  d("*:443 allows any host on 443", { networking: { type: "limited", allowed_hosts: ["*:443"] } }, get("https://x.test/"), ALLOW("networking.allowed_hosts")),
  d("*:443 refuses port 80", { networking: { type: "limited", allowed_hosts: ["*:443"] } }, get("http://x.test/"), DENY("default")),

  // Address literals in every spelling.
  d("an IPv4 literal", LIMITED, get("http://93.184.216.34/"), ALLOW("networking.allowed_hosts")),
  d("IPv4 as one decimal number", LIMITED, get("http://1572395042/"), ALLOW("networking.allowed_hosts", { target: "http://93.184.216.34/" })),
  d("IPv4 as one hex number", LIMITED, get("http://0x5db8d822/"), ALLOW("networking.allowed_hosts")),
  d("IPv4 in octal parts", LIMITED, get("http://0135.0270.0330.042/"), ALLOW("networking.allowed_hosts")),
  d("IPv4 in hex parts", LIMITED, get("http://0x5d.0xb8.0xd8.0x22/"), ALLOW("networking.allowed_hosts")),
  d("IPv4 short form a.b", LIMITED, get("http://93.12113954/"), ALLOW("networking.allowed_hosts")),
  d("IPv4 short form a.b.c", LIMITED, get("http://93.184.55330/"), ALLOW("networking.allowed_hosts")),
  d("IPv4-mapped IPv6 is its IPv4 address", LIMITED, get("http://[::ffff:93.184.216.34]/"), ALLOW("networking.allowed_hosts")),
  d("IPv4-mapped IPv6 in hex is its IPv4 address", LIMITED, get("http://[::ffff:5db8:d822]/"), ALLOW("networking.allowed_hosts")),
  d("another IPv4 address is refused", LIMITED, get("http://93.184.216.35/"), DENY("default")),
  d("an IPv6 literal", LIMITED, get("http://[2606:2800:220:1:248:1893:25c8:1946]/"), ALLOW("networking.allowed_hosts")),
  d("an IPv6 literal spelled with capitals and leading zeros", LIMITED, get("http://[2606:2800:0220:0001:0248:1893:25C8:1946]/"), ALLOW("networking.allowed_hosts")),
  d("an IPv6 pattern with a port, on that port", LIMITED, get("https://[2001:db8:0::1]:8443/"), ALLOW("networking.allowed_hosts")),
  d("an IPv6 pattern with a port, on another port", LIMITED, get("https://[2001:db8::1]/"), DENY("default")),
  d("another IPv6 address is refused", LIMITED, get("http://[2606:2800:220:1::1]/"), DENY("default")),

  // Deny rules with methods and paths; encoded-path bypass attempts.
  d("a deny rule with method and path", FULL, req("DELETE", "https://api.github.com/admin/users", ["GITHUB"]), DENY("no-admin")),
  d("/admin/** covers /admin itself", FULL, req("DELETE", "https://api.github.com/admin", ["GITHUB"]), DENY("no-admin")),
  d("the method is compared upper-cased", FULL, req("delete", "https://api.github.com/admin/x", ["GITHUB"]), DENY("no-admin")),
  d("another method passes the deny rule", FULL, get("https://api.github.com/admin/x", ["GITHUB"]), ALLOW("networking.allowed_hosts", { credentials: ["GITHUB"] })),
  d("another path passes the deny rule", FULL, req("DELETE", "https://api.github.com/repos/x", ["GITHUB"]), ALLOW("networking.allowed_hosts")),
  d("a percent-encoded letter does not bypass a deny path", FULL, req("DELETE", "https://api.github.com/%61dmin/x", ["GITHUB"]), DENY("no-admin")),
  d("an encoded slash is refused where a deny rule has paths", FULL, req("DELETE", "https://api.github.com/admin%2Fusers", ["GITHUB"]), DENY("no-admin", { reason: "encoded /" })),
  d("an encoded ../ is refused where a deny rule has paths", FULL, req("DELETE", "https://api.github.com/x/..%2Fadmin", ["GITHUB"]), DENY("no-admin")),
  d("a literal ../ is resolved by the URL, then denied", FULL, req("DELETE", "https://api.github.com/x/../admin/y", ["GITHUB"]), DENY("no-admin", { target: "https://api.github.com/admin/y" })),
  d("%2e%2e is resolved by the URL, then denied", FULL, req("DELETE", "https://api.github.com/x/%2e%2e/admin", ["GITHUB"]), DENY("no-admin")),
  d("an empty segment is refused where a deny rule has paths", FULL, req("DELETE", "https://api.github.com//admin/x", ["GITHUB"]), DENY("no-admin", { reason: "empty segment" })),
  d("an odd path is fine when no path rule applies", FULL, get("https://api.github.com/a%2Fb", ["GITHUB"]), ALLOW("networking.allowed_hosts")),

  // Allow rules with methods and paths.
  d("an allow rule with method and path", FULL, get("https://docs.example.net/v1/a/b"), ALLOW("docs-read")),
  d("an allow rule refuses another method", FULL, req("POST", "https://docs.example.net/v1/a"), DENY("default")),
  d("an allow rule refuses another path", FULL, get("https://docs.example.net/v2/a"), DENY("default")),
  d("/static/* allows one segment", FULL, req("HEAD", "https://docs.example.net/static/app.js"), ALLOW("docs-read")),
  d("/static/* refuses two segments", FULL, get("https://docs.example.net/static/a/b"), DENY("default")),
  d("an allow rule's path is matched after one decode", FULL, get("https://docs.example.net/%76%31/x"), ALLOW("docs-read")),
  d("an encoded slash is refused by an allow rule with paths", FULL, get("https://docs.example.net/v1%2Fa"), DENY("docs-read")),
  d("a double-encoded dot segment is refused by an allow rule with paths", FULL, get("https://docs.example.net/v1/%252e%252e/x"), DENY("docs-read", { reason: "double-encoded" })),
  d("allow rules are tried in order", { allow: [{ hosts: ["a.test"], methods: ["POST"] }, { name: "second", hosts: ["a.test"] }] }, get("https://a.test/"), ALLOW("second")),
  d("an unnamed allow rule is allow[i]", { allow: [{ hosts: ["b.test"] }, { hosts: ["a.test"] }] }, get("https://a.test/"), ALLOW("allow[1]")),

  // Services.
  d("a service by its .svc name", FULL, get("http://billing.svc/v1/invoices?id=3"), ALLOW("services.billing", { target: "http://10.0.0.5:8080/api/v1/invoices?id=3", service: "billing", privateAddressAllowed: true, credentials: ["BILLING"] })),
  d("a service by its bare name", FULL, req("POST", "http://billing/v1/invoices"), ALLOW("services.billing", { target: "http://10.0.0.5:8080/api/v1/invoices", service: "billing" })),
  d("a service ignores the request's scheme and port", FULL, get("https://billing.svc:9999/v1/x"), ALLOW("services.billing", { target: "http://10.0.0.5:8080/api/v1/x" })),
  d("a service at the root of its URL", FULL, get("http://inventory.svc/items/7?full=1"), ALLOW("services.inventory", { target: "https://inventory.internal:9443/items/7?full=1", credentials: [] })),
  d("a service refuses a method it does not list", FULL, req("DELETE", "http://billing.svc/v1/x"), DENY("services.billing", { service: "billing" })),
  d("a service refuses a path it does not list", FULL, get("http://billing.svc/v2/x"), DENY("services.billing")),
  d("a service refuses an encoded escape from its path", FULL, get("http://billing.svc/v1/..%2f..%2fadmin"), DENY("services.billing")),
  d("a service without paths still refuses an encoded slash", FULL, get("http://inventory.svc/a%2F..%2Fb"), DENY("services.inventory")),
  d("a .svc name that names no service", FULL, get("http://nope.svc/"), DENY("services")),
  d("a .svc name that names no service, unrestricted", UNRESTRICTED, get("http://billing.svc/"), DENY("services")),
  d("a service is never reached through a tunnel", FULL, tunnel("billing.svc:443"), DENY("services.billing")),
  d("a deny rule on the service name wins", { services: { billing: { url: "http://10.0.0.5/" } }, deny: [{ name: "no-billing-writes", hosts: ["billing.svc"], methods: ["POST"] }] }, req("POST", "http://billing.svc/x"), DENY("no-billing-writes")),
  d("a deny rule on the service's address wins", { services: { billing: { url: "http://10.0.0.5/" } }, deny: [{ hosts: ["10.0.0.5"] }] }, get("http://billing/x"), DENY("deny[0]")),
  d("a deny rule on the service name leaves other methods", { services: { billing: { url: "http://10.0.0.5/" } }, deny: [{ hosts: ["billing.svc"], methods: ["POST"] }] }, get("http://billing.svc/x"), ALLOW("services.billing", { target: "http://10.0.0.5/x" })),

  // Package managers.
  d("npm registry", FULL, get("https://registry.npmjs.org/zod"), ALLOW("networking.allow_package_managers")),
  d("PyPI files", FULL, get("https://files.pythonhosted.org/packages/x.whl"), ALLOW("networking.allow_package_managers")),
  d("crates index", FULL, get("https://index.crates.io/config.json"), ALLOW("networking.allow_package_managers")),
  d("Go module proxy", FULL, get("https://proxy.golang.org/github.com/x/@v/list"), ALLOW("networking.allow_package_managers")),
  d("RubyGems", FULL, get("https://rubygems.org/gems/rails"), ALLOW("networking.allow_package_managers")),
  d("Debian apt over http", FULL, get("http://deb.debian.org/debian/dists/stable/InRelease"), ALLOW("networking.allow_package_managers")),
  d("Alpine", FULL, get("https://dl-cdn.alpinelinux.org/alpine/v3.20/main/"), ALLOW("networking.allow_package_managers")),
  d("a registry's other subdomains are not opened", FULL, get("https://evil.registry.npmjs.org/"), DENY("default")),
  d("registries are closed without allow_package_managers", LIMITED, get("https://registry.npmjs.org/zod"), DENY("default")),
  d("a tunnel to a registry", FULL, tunnel("registry.npmjs.org:443"), ALLOW("networking.allow_package_managers", { credentials: [] })),

  // MCP servers.
  d("the session's MCP server", FULL, get("https://mcp.example.io/sse"), ALLOW("networking.allow_mcp_servers"), { mcpServerHosts: ["mcp.example.io"] }),
  d("an MCP server host with a port", FULL, get("https://mcp.example.io:8443/sse"), ALLOW("networking.allow_mcp_servers"), { mcpServerHosts: ["mcp.example.io:8443"] }),
  d("a host that is not the session's MCP server", FULL, get("https://other.example.io/"), DENY("default"), { mcpServerHosts: ["mcp.example.io"] }),
  d("MCP servers are closed without allow_mcp_servers", LIMITED, get("https://mcp.example.io/sse"), DENY("default"), { mcpServerHosts: ["mcp.example.io"] }),
  d("a tunnel to the session's MCP server", FULL, tunnel("mcp.example.io:443"), ALLOW("networking.allow_mcp_servers"), { mcpServerHosts: ["mcp.example.io"] }),

  // Credentials.
  d("a required credential present", FULL, get("https://api.github.com/repos", ["GITHUB"]), ALLOW("networking.allowed_hosts", { credentials: ["GITHUB"] })),
  d("a required credential absent", FULL, get("https://api.github.com/repos"), DENY("credentials.GITHUB", { reason: "DEFT_SECRET_GITHUB" })),
  d("a placeholder sent to a host it is not bound to", FULL, get("https://api.stripe.com/v1/charges?token=tok_live_123", ["GITHUB"]), DENY("credentials.GITHUB", { reason: "bound to other hosts" })),
  d("a placeholder sent to an allowed host bound to nothing", FULL, get("https://raw.githubusercontent.com/x", ["STRIPE"]), DENY("credentials.STRIPE")),
  d("a bound credential need not be present", FULL, get("https://api.stripe.com/v1/charges"), ALLOW("networking.allowed_hosts", { credentials: ["STRIPE"] })),
  d("a bound credential present", FULL, req("POST", "https://api.stripe.com/v1/charges", ["STRIPE"]), ALLOW("networking.allowed_hosts", { credentials: ["STRIPE"] })),
  d("an undeclared placeholder name is ignored", FULL, get("https://api.stripe.com/", ["OTHER"]), ALLOW("networking.allowed_hosts", { credentials: ["STRIPE"] })),
  d("a credential bound to a service", FULL, get("http://billing.svc/v1/x", ["BILLING"]), ALLOW("services.billing", { credentials: ["BILLING"] })),
  d("a service's credential sent elsewhere", FULL, get("https://api.stripe.com/", ["BILLING"]), DENY("credentials.BILLING")),
  d("a credential bound with a wildcard and port", { networking: { type: "limited", allowed_hosts: ["*.corp.test"] }, credentials: [{ name: "CORP", secret: { env: "C" }, hosts: ["*.corp.test:443"] }] }, get("https://git.corp.test/", ["CORP"]), ALLOW("networking.allowed_hosts", { credentials: ["CORP"] })),
  d("a credential bound to another port", { networking: { type: "limited", allowed_hosts: ["*.corp.test"] }, credentials: [{ name: "CORP", secret: { env: "C" }, hosts: ["*.corp.test:443"] }] }, get("http://git.corp.test/", ["CORP"]), DENY("credentials.CORP")),

  // CONNECT tunnels.
  d("a tunnel to an allowed host", LIMITED, tunnel("api.github.com:443"), ALLOW("networking.allowed_hosts", { credentials: [] })),
  d("a tunnel to a pinned port", LIMITED, tunnel("pinned.example.org:8443"), ALLOW("networking.allowed_hosts")),
  d("a tunnel to another port", LIMITED, tunnel("pinned.example.org:443"), DENY("default")),
  d("a tunnel, unrestricted", UNRESTRICTED, tunnel("anything.test:22"), ALLOW("networking.unrestricted")),
  d("a tunnel through an allow rule without methods or paths", { allow: [{ name: "plain", hosts: ["a.test"] }] }, tunnel("a.test:443"), ALLOW("plain")),
  d("no tunnel through an allow rule with paths", FULL, tunnel("docs.example.net:443"), DENY("default", { reason: "tunnel" })),
  d("a deny rule with methods denies the whole tunnel", { networking: { type: "limited", allowed_hosts: ["a.test"] }, deny: [{ name: "no-post", hosts: ["a.test"], methods: ["POST"] }] }, tunnel("a.test:443"), DENY("no-post")),
  d("a deny rule with paths denies the whole tunnel", FULL, tunnel("api.github.com:443"), DENY("no-admin", { reason: "inside a tunnel" })),
  d("a host with a required credential has no tunnel", { ...FULL, deny: [] }, tunnel("api.github.com:443"), DENY("credentials.GITHUB", { reason: "CONNECT" })),
  d("a tunnel carries no credentials", FULL, tunnel("api.stripe.com:443"), ALLOW("networking.allowed_hosts", { credentials: [] })),

  // Shadow mode.
  d("shadow: the default deny is let through", SHADOW, get("https://example.com/"), SHADOWED("default")),
  d("shadow: a deny rule is let through, and named", SHADOW, req("DELETE", "https://api.github.com/admin/x", ["GITHUB"]), SHADOWED("no-admin", { credentials: ["GITHUB"] })),
  d("shadow: an allowed request is not shadowed", SHADOW, get("https://api.github.com/", ["GITHUB"]), ALLOW("networking.allowed_hosts", { shadow: false })),
  d("shadow: a missing required credential is let through", SHADOW, get("https://api.github.com/"), SHADOWED("credentials.GITHUB")),
  d("shadow: a service's refusal still targets the service", SHADOW, req("DELETE", "http://billing.svc/v1/x"), SHADOWED("services.billing", { target: "http://10.0.0.5:8080/api/v1/x", privateAddressAllowed: true })),
];

/** Policies that must be refused, with a line their issues must contain. */
export const INVALID_POLICY_CASES: readonly InvalidPolicyCase[] = [
  { kind: "invalid-policy", name: "an unknown networking type", policy: { networking: { type: "open" } }, issue: "networking.type: " },
  { kind: "invalid-policy", name: "an unknown top-level key", policy: { bogus: 1 }, issue: '(root): Unrecognized key: "bogus"' },
  { kind: "invalid-policy", name: "not an object", policy: "allow everything", issue: "(root): " },
  { kind: "invalid-policy", name: "an invalid host", policy: { allow: [{ hosts: ["a..b"] }] }, issue: "allow[0].hosts[0]: invalid host" },
  { kind: "invalid-policy", name: "a misplaced wildcard", policy: { deny: [{ hosts: ["api.*.com"] }] }, issue: "deny[0].hosts[0]: " },
  { kind: "invalid-policy", name: "a private address in allowed_hosts", policy: { networking: { type: "limited", allowed_hosts: ["10.0.0.1"] } }, issue: "networking.allowed_hosts[0]: 10.0.0.1 is not a public address (private)" },
  { kind: "invalid-policy", name: "metadata in an allow rule, any spelling", policy: { allow: [{ hosts: ["0xa9fea9fe"] }] }, issue: "allow[0].hosts[0]: 169.254.169.254 is not a public address (metadata)" },
  { kind: "invalid-policy", name: "** in the middle of a path", policy: { allow: [{ hosts: ["a.com"], paths: ["/a/**/b"] }] }, issue: "allow[0].paths: " },
  { kind: "invalid-policy", name: "a credential bound to every host", policy: { credentials: [{ name: "X", secret: { env: "X" }, hosts: ["*"] }] }, issue: "credentials[0].hosts[0]: a credential cannot be bound to every host" },
  { kind: "invalid-policy", name: "a required credential carried only in the body", policy: { credentials: [{ name: "X", secret: { env: "X" }, hosts: ["a.com"], in: ["body"], require: true }] }, issue: "credentials[0].require: " },
  { kind: "invalid-policy", name: "two credentials with one name", policy: { credentials: [{ name: "X", secret: { env: "X" }, hosts: ["a.com"] }, { name: "X", secret: { env: "Y" }, hosts: ["b.com"] }] }, issue: "credentials[1].name: " },
  { kind: "invalid-policy", name: "a credential bound to an undeclared service", policy: { credentials: [{ name: "X", secret: { env: "X" }, hosts: ["nope.svc"] }] }, issue: 'credentials[0].hosts[0]: "nope.svc" names service "nope"' },
  { kind: "invalid-policy", name: "a secret reference of no known kind", policy: { credentials: [{ name: "X", secret: { vault: "x" }, hosts: ["a.com"] }] }, issue: "credentials[0].secret: " },
  { kind: "invalid-policy", name: "a service URL that is not http(s)", policy: { services: { b: { url: "ftp://files.internal/" } } }, issue: "services.b.url: a service URL is http or https" },
  { kind: "invalid-policy", name: "a service URL with a password", policy: { services: { b: { url: "http://u:p@b.internal/" } } }, issue: "services.b.url: a service URL carries no user or password" },
  { kind: "invalid-policy", name: "a service named by its bare name", policy: { services: { billing: { url: "http://b.internal/" } }, deny: [{ hosts: ["billing"] }] }, issue: 'deny[0].hosts[0]: "billing" is the name of a service' },
  { kind: "invalid-policy", name: "a service in allowed_hosts", policy: { networking: { type: "limited", allowed_hosts: ["billing.svc"] }, services: { billing: { url: "http://b.internal/" } } }, issue: "networking.allowed_hosts[0]: " },
  { kind: "invalid-policy", name: "an upper-case service name", policy: { services: { Billing: { url: "http://b.internal/" } } }, issue: "services.Billing: " },
  { kind: "invalid-policy", name: "a rule named like the engine's own rules", policy: { allow: [{ name: "networking.allowed_hosts", hosts: ["a.com"] }] }, issue: 'allow[0].name: "networking.allowed_hosts" is reserved' },
  { kind: "invalid-policy", name: "a rule named like another rule's default name", policy: { deny: [{ name: "allow[0]", hosts: ["a.com"] }] }, issue: "deny[0].name: " },
  { kind: "invalid-policy", name: "two rules with one name", policy: { allow: [{ name: "r", hosts: ["a.com"] }], deny: [{ name: "r", hosts: ["b.com"] }] }, issue: 'deny[0].name: "r" is already the name of allow[0]' },
];

const v4 = (host: string) => ({ kind: "ipv4" as const, host });
const v6 = (host: string) => ({ kind: "ipv6" as const, host });
const name = (host: string) => ({ kind: "name" as const, host });
const err = (error: string) => ({ error });

/** normalizeHost. */
export const HOST_CASES: readonly HostCase[] = [
  { kind: "host", input: "Example.COM", expect: name("example.com") },
  { kind: "host", input: "example.com.", expect: name("example.com") },
  { kind: "host", input: "under_score.example", expect: name("under_score.example") },
  { kind: "host", input: "bücher.example", expect: name("xn--bcher-kva.example") },
  { kind: "host", input: "ＡＰＩ．GitHub．com", expect: name("api.github.com") },
  { kind: "host", input: "１２７.０.０.１", expect: v4("127.0.0.1") },
  { kind: "host", input: "127.0.0.1", expect: v4("127.0.0.1") },
  { kind: "host", input: "127.0.0.1.", expect: v4("127.0.0.1") },
  { kind: "host", input: "2130706433", expect: v4("127.0.0.1") },
  { kind: "host", input: "0177.0.0.1", expect: v4("127.0.0.1") },
  { kind: "host", input: "017700000001", expect: v4("127.0.0.1") },
  { kind: "host", input: "0x7f.0.0.1", expect: v4("127.0.0.1") },
  { kind: "host", input: "0X7F000001", expect: v4("127.0.0.1") },
  { kind: "host", input: "127.1", expect: v4("127.0.0.1") },
  { kind: "host", input: "127.0.1", expect: v4("127.0.0.1") },
  { kind: "host", input: "0x7f.1", expect: v4("127.0.0.1") },
  { kind: "host", input: "0177.0x0.1", expect: v4("127.0.0.1") },
  { kind: "host", input: "0", expect: v4("0.0.0.0") },
  { kind: "host", input: "0x", expect: v4("0.0.0.0") },
  { kind: "host", input: "4294967295", expect: v4("255.255.255.255") },
  { kind: "host", input: "[::1]", expect: v6("::1") },
  { kind: "host", input: "::1", expect: v6("::1") },
  { kind: "host", input: "[0:0:0:0:0:0:0:1]", expect: v6("::1") },
  { kind: "host", input: "[::]", expect: v6("::") },
  { kind: "host", input: "[1:0:0:0:0:0:0:0]", expect: v6("1::") },
  { kind: "host", input: "[2001:DB8:0:0:1:0:0:1]", expect: v6("2001:db8::1:0:0:1") },
  { kind: "host", input: "[2001:db8:0:0:0:0:2:1]", expect: v6("2001:db8::2:1") },
  { kind: "host", input: "[2001:0db8:0000:0001:0000:0000:0000:0001]", expect: v6("2001:db8:0:1::1") },
  { kind: "host", input: "[2001:db8:1:1:1:1:0:1]", expect: v6("2001:db8:1:1:1:1:0:1") },
  { kind: "host", input: "[FE80::1]", expect: v6("fe80::1") },
  { kind: "host", input: "[::ffff:127.0.0.1]", expect: v4("127.0.0.1") },
  { kind: "host", input: "[::ffff:7f00:1]", expect: v4("127.0.0.1") },
  { kind: "host", input: "[0:0:0:0:0:FFFF:A9FE:A9FE]", expect: v4("169.254.169.254") },
  { kind: "host", input: "[::127.0.0.1]", expect: v4("127.0.0.1") },
  { kind: "host", input: "[::7f00:1]", expect: v4("127.0.0.1") },
  { kind: "host", input: "[64:ff9b::127.0.0.1]", expect: v6("64:ff9b::7f00:1") },
  { kind: "host", input: "", expect: err("empty") },
  { kind: "host", input: "exa mple.com", expect: err("not allowed") },
  { kind: "host", input: "user@example.com", expect: err('"@"') },
  { kind: "host", input: "a..b", expect: err("empty label") },
  { kind: "host", input: ".example.com", expect: err("empty label") },
  { kind: "host", input: "example.com..", expect: err("empty label") },
  { kind: "host", input: "%65xample.com", expect: err("percent-encoding") },
  { kind: "host", input: `${"a.".repeat(126)}ab`, expect: err("longer than 253") },
  { kind: "host", input: `${"a".repeat(64)}.com`, expect: err("longer than 63") },
  { kind: "host", input: "256.0.0.1", expect: err("not a valid IPv4") },
  { kind: "host", input: "1.2.3.4.5", expect: err("not a valid IPv4") },
  { kind: "host", input: "4294967296", expect: err("not a valid IPv4") },
  { kind: "host", input: "08.0.0.1", expect: err("not a valid IPv4") },
  { kind: "host", input: "foo.123", expect: err("not a valid IPv4") },
  { kind: "host", input: "[::1", expect: err("must end with ]") },
  { kind: "host", input: "[fe80::1%25eth0]", expect: err("not a valid IPv6") },
  { kind: "host", input: "[1:2:3:4:5:6:7:8:9]", expect: err("not a valid IPv6") },
  { kind: "host", input: "[1::2::3]", expect: err("not a valid IPv6") },
  { kind: "host", input: "[::ffff:1.2.3]", expect: err("not a valid IPv6") },
  { kind: "host", input: "[::ffff:01.2.3.4]", expect: err("not a valid IPv6") },
];

/** parseAuthority. */
export const AUTHORITY_CASES: readonly AuthorityCase[] = [
  { kind: "authority", input: "example.com:443", defaultPort: 80, expect: { ...name("example.com"), port: 443 } },
  { kind: "authority", input: "Example.com", defaultPort: 443, expect: { ...name("example.com"), port: 443 } },
  { kind: "authority", input: "[::1]:8080", defaultPort: 443, expect: { ...v6("::1"), port: 8080 } },
  { kind: "authority", input: "[::1]", defaultPort: 443, expect: { ...v6("::1"), port: 443 } },
  { kind: "authority", input: "[::ffff:127.0.0.1]:22", defaultPort: 443, expect: { ...v4("127.0.0.1"), port: 22 } },
  { kind: "authority", input: "127.1:80", defaultPort: 443, expect: { ...v4("127.0.0.1"), port: 80 } },
  { kind: "authority", input: "example.com:0", defaultPort: 443, expect: err("out of range") },
  { kind: "authority", input: "example.com:65536", defaultPort: 443, expect: err("out of range") },
  { kind: "authority", input: "example.com:", defaultPort: 443, expect: err("not a number") },
  { kind: "authority", input: "example.com:+443", defaultPort: 443, expect: err("not a number") },
  { kind: "authority", input: "::1:443", defaultPort: 443, expect: err("must be in brackets") },
  { kind: "authority", input: "[::1]x", defaultPort: 443, expect: err("only :port") },
  { kind: "authority", input: "user@example.com:443", defaultPort: 443, expect: err('"@"') },
];

/** hostMatches. */
export const MATCH_CASES: readonly MatchCase[] = [
  { kind: "match", pattern: "*.github.com", host: "api.github.com", port: 443, matches: true },
  { kind: "match", pattern: "*.github.com", host: "a.b.github.com", port: 443, matches: true },
  { kind: "match", pattern: "*.github.com", host: "github.com", port: 443, matches: false },
  { kind: "match", pattern: "*.github.com", host: "evilgithub.com", port: 443, matches: false },
  { kind: "match", pattern: "*.github.com", host: "1.2.3.4", port: 443, matches: false },
  { kind: "match", pattern: "*.GitHub.com.", host: "X.GITHUB.COM", port: 443, matches: true },
  { kind: "match", pattern: "api.github.com:443", host: "api.github.com", port: 443, matches: true },
  { kind: "match", pattern: "api.github.com:443", host: "api.github.com", port: 80, matches: false },
  { kind: "match", pattern: "API.GitHub.com.", host: "api.github.com", port: 1, matches: true },
  { kind: "match", pattern: "*", host: "anything.test", port: 1, matches: true },
  { kind: "match", pattern: "*", host: "[::1]", port: 1, matches: true },
  { kind: "match", pattern: "*:443", host: "x.test", port: 443, matches: true },
  { kind: "match", pattern: "*:443", host: "x.test", port: 80, matches: false },
  { kind: "match", pattern: "127.0.0.1", host: "0x7f.1", port: 80, matches: true },
  { kind: "match", pattern: "0x7f.1", host: "127.0.0.1", port: 80, matches: true },
  { kind: "match", pattern: "2130706433:8080", host: "127.0.0.1", port: 8080, matches: true },
  { kind: "match", pattern: "[::ffff:127.0.0.1]", host: "127.0.0.1", port: 80, matches: true },
  { kind: "match", pattern: "127.0.0.1", host: "[::ffff:7f00:1]", port: 80, matches: true },
  { kind: "match", pattern: "[2001:db8::1]:443", host: "[2001:DB8:0::1]", port: 443, matches: true },
  { kind: "match", pattern: "[2001:db8::1]:443", host: "[2001:db8::1]", port: 80, matches: false },
  { kind: "match", pattern: "2001:db8::1", host: "[2001:db8::1]", port: 80, matches: true },
  { kind: "match", pattern: "1.2.3.4", host: "1.2.3.4.example", port: 80, matches: false },
];

/** Path patterns against raw pathnames. */
export const PATH_CASES: readonly PathCase[] = [
  { kind: "path", patterns: ["/repos/**"], path: "/repos", expect: "match" },
  { kind: "path", patterns: ["/repos/**"], path: "/repos/", expect: "match" },
  { kind: "path", patterns: ["/repos/**"], path: "/repos/a/b/c", expect: "match" },
  { kind: "path", patterns: ["/repos/**"], path: "/reposx", expect: "no-match" },
  { kind: "path", patterns: ["/repos/**"], path: "/repo", expect: "no-match" },
  { kind: "path", patterns: ["/repos/*"], path: "/repos/a", expect: "match" },
  { kind: "path", patterns: ["/repos/*"], path: "/repos/a/b", expect: "no-match" },
  { kind: "path", patterns: ["/repos/*"], path: "/repos/", expect: "no-match" },
  { kind: "path", patterns: ["/repos/*"], path: "/repos", expect: "no-match" },
  { kind: "path", patterns: ["/x"], path: "/x", expect: "match" },
  { kind: "path", patterns: ["/x"], path: "/x/", expect: "match" },
  { kind: "path", patterns: ["/x"], path: "/x/y", expect: "no-match" },
  { kind: "path", patterns: ["/x"], path: "/X", expect: "no-match" },
  { kind: "path", patterns: ["/"], path: "/", expect: "match" },
  { kind: "path", patterns: ["/"], path: "/a", expect: "no-match" },
  { kind: "path", patterns: ["/a/*/c"], path: "/a/b/c", expect: "match" },
  { kind: "path", patterns: ["/files/*.json"], path: "/files/a.json", expect: "match" },
  { kind: "path", patterns: ["/files/*.json"], path: "/files/a.txt", expect: "no-match" },
  { kind: "path", patterns: ["/a.b"], path: "/axb", expect: "no-match" },
  { kind: "path", patterns: ["/x", "/y/**"], path: "/y/z", expect: "match" },
  { kind: "path", patterns: ["/repos/**"], path: "/rep%6fs/x", expect: "match" },
  { kind: "path", patterns: ["/café"], path: "/caf%C3%A9", expect: "match" },
  { kind: "path", patterns: ["/repos/**"], path: "/repos%2fx", expect: "refused" },
  { kind: "path", patterns: ["/repos/**"], path: "/repos%5Cx", expect: "refused" },
  { kind: "path", patterns: ["/repos/**"], path: "/repos/%2e%2e/admin", expect: "refused" },
  { kind: "path", patterns: ["/repos/**"], path: "/repos/%2E", expect: "refused" },
  { kind: "path", patterns: ["/repos/**"], path: "/repos//x", expect: "refused" },
  { kind: "path", patterns: ["/repos/**"], path: "/repos/%00", expect: "refused" },
  { kind: "path", patterns: ["/repos/**"], path: "/repos/%zz", expect: "refused" },
  { kind: "path", patterns: ["/repos/**"], path: "/repos/%C3", expect: "refused" },
  { kind: "path", patterns: ["/repos/**"], path: "/repos/%252e%252e/x", expect: "refused" },
  { kind: "path", patterns: ["/repos/**"], path: "/repos/a%252Fb", expect: "refused" },
  { kind: "path", patterns: ["/repos/**"], path: "/repos/100%25", expect: "match" },
];

/** classifyAddress. */
export const ADDRESS_CASES: readonly AddressCase[] = [
  { kind: "address", ip: "8.8.8.8", class: "public", ok: true },
  { kind: "address", ip: "93.184.216.34", class: "public", ok: true },
  { kind: "address", ip: "192.0.2.1", class: "public", ok: true },
  { kind: "address", ip: "127.0.0.1", class: "loopback", ok: false },
  { kind: "address", ip: "127.255.255.254", class: "loopback", ok: false },
  { kind: "address", ip: "0x7f000001", class: "loopback", ok: false },
  { kind: "address", ip: "2130706433", class: "loopback", ok: false },
  { kind: "address", ip: "0177.1", class: "loopback", ok: false },
  { kind: "address", ip: "127.1", class: "loopback", ok: false },
  { kind: "address", ip: "0.0.0.0", class: "unspecified", ok: false },
  { kind: "address", ip: "0.1.2.3", class: "unspecified", ok: false },
  { kind: "address", ip: "10.1.2.3", class: "private", ok: false },
  { kind: "address", ip: "172.16.0.1", class: "private", ok: false },
  { kind: "address", ip: "172.31.255.255", class: "private", ok: false },
  { kind: "address", ip: "172.32.0.1", class: "public", ok: true },
  { kind: "address", ip: "192.168.1.1", class: "private", ok: false },
  { kind: "address", ip: "169.254.1.1", class: "link-local", ok: false },
  { kind: "address", ip: "169.254.169.254", class: "metadata", ok: false },
  { kind: "address", ip: "0xa9fea9fe", class: "metadata", ok: false },
  { kind: "address", ip: "169.254.170.2", class: "metadata", ok: false },
  { kind: "address", ip: "100.100.100.200", class: "metadata", ok: false },
  { kind: "address", ip: "100.64.0.1", class: "cgnat", ok: false },
  { kind: "address", ip: "100.127.255.255", class: "cgnat", ok: false },
  { kind: "address", ip: "100.128.0.1", class: "public", ok: true },
  { kind: "address", ip: "224.0.0.1", class: "multicast", ok: false },
  { kind: "address", ip: "239.255.255.250", class: "multicast", ok: false },
  { kind: "address", ip: "255.255.255.255", class: "broadcast", ok: false },
  { kind: "address", ip: "240.0.0.1", class: "reserved", ok: false },
  { kind: "address", ip: "198.18.0.1", class: "benchmarking", ok: false },
  { kind: "address", ip: "198.19.255.255", class: "benchmarking", ok: false },
  { kind: "address", ip: "198.20.0.1", class: "public", ok: true },
  { kind: "address", ip: "192.0.0.8", class: "ietf", ok: false },
  { kind: "address", ip: "::1", class: "loopback", ok: false },
  { kind: "address", ip: "[::1]", class: "loopback", ok: false },
  { kind: "address", ip: "::", class: "unspecified", ok: false },
  { kind: "address", ip: "fc00::1", class: "private", ok: false },
  { kind: "address", ip: "fd12:3456::1", class: "private", ok: false },
  { kind: "address", ip: "fe80::1", class: "link-local", ok: false },
  { kind: "address", ip: "febf::1", class: "link-local", ok: false },
  { kind: "address", ip: "fec0::1", class: "reserved", ok: false },
  { kind: "address", ip: "ff02::1", class: "multicast", ok: false },
  { kind: "address", ip: "fd00:ec2::254", class: "metadata", ok: false },
  { kind: "address", ip: "2002:7f00:1::", class: "loopback", ok: false },
  { kind: "address", ip: "2002:a9fe:a9fe::1", class: "metadata", ok: false },
  { kind: "address", ip: "2002:5db8:d822::1", class: "public", ok: true },
  { kind: "address", ip: "64:ff9b::7f00:1", class: "loopback", ok: false },
  { kind: "address", ip: "64:ff9b::169.254.169.254", class: "metadata", ok: false },
  { kind: "address", ip: "64:ff9b::808:808", class: "public", ok: true },
  { kind: "address", ip: "64:ff9b:1::1", class: "private", ok: false },
  { kind: "address", ip: "2001::1", class: "teredo", ok: false },
  { kind: "address", ip: "2001:0:4136:e378:8000:63bf:3fff:fdd2", class: "teredo", ok: false },
  { kind: "address", ip: "2001:db8::1", class: "public", ok: true },
  { kind: "address", ip: "2606:4700::1111", class: "public", ok: true },
  { kind: "address", ip: "100::1", class: "reserved", ok: false },
  { kind: "address", ip: "::ffff:127.0.0.1", class: "loopback", ok: false },
  { kind: "address", ip: "::ffff:7f00:1", class: "loopback", ok: false },
  { kind: "address", ip: "::ffff:169.254.169.254", class: "metadata", ok: false },
  { kind: "address", ip: "::ffff:8.8.8.8", class: "public", ok: true },
  { kind: "address", ip: "::127.0.0.1", class: "loopback", ok: false },
  { kind: "address", ip: "example.com", class: "invalid", ok: false },
  { kind: "address", ip: "1.2.3.256", class: "invalid", ok: false },
];

/** checkAddress against decisions. */
export const CHECK_ADDRESS_CASES: readonly CheckAddressCase[] = [
  { kind: "check-address", name: "a public address needs nothing", ip: "8.8.8.8", target: "https://dns.google/", privateAddressAllowed: false, ok: true },
  { kind: "check-address", name: "a private address without a service", ip: "10.0.0.5", target: "https://looks-public.example/", privateAddressAllowed: false, ok: false },
  { kind: "check-address", name: "a private address for a service", ip: "10.0.0.5", target: "http://10.0.0.5:8080/api/x", privateAddressAllowed: true, ok: true },
  { kind: "check-address", name: "loopback for a service by name", ip: "127.0.0.1", target: "http://localhost:3000/", privateAddressAllowed: true, ok: true },
  { kind: "check-address", name: "metadata without a service", ip: "169.254.169.254", target: "http://169.254.169.254/latest/", privateAddressAllowed: false, ok: false },
  { kind: "check-address", name: "metadata by a service's name that resolves to it", ip: "169.254.169.254", target: "http://meta.internal/", privateAddressAllowed: true, ok: false },
  { kind: "check-address", name: "metadata by a service whose URL names it", ip: "169.254.169.254", target: "http://169.254.169.254/latest/", privateAddressAllowed: true, ok: true },
  { kind: "check-address", name: "metadata by a service whose URL names it in another spelling", ip: "169.254.169.254", target: "http://[::ffff:a9fe:a9fe]/", privateAddressAllowed: true, ok: true },
  { kind: "check-address", name: "another metadata address than the service's", ip: "169.254.170.2", target: "http://169.254.169.254/", privateAddressAllowed: true, ok: false },
  { kind: "check-address", name: "a name is never an address", ip: "localhost", target: "http://localhost/", privateAddressAllowed: true, ok: false },
];

/** Every case, in the order the runner takes them. */
export const CONFORMANCE_CASES: readonly ConformanceCase[] = [
  ...DECIDE_CASES,
  ...INVALID_POLICY_CASES,
  ...HOST_CASES,
  ...AUTHORITY_CASES,
  ...MATCH_CASES,
  ...PATH_CASES,
  ...ADDRESS_CASES,
  ...CHECK_ADDRESS_CASES,
];

// ---------------------------------------------------------------------------------------------
// The runner.

/** A short name for a case, for failure messages. */
export function caseName(c: ConformanceCase): string {
  switch (c.kind) {
    case "decide":
    case "invalid-policy":
    case "check-address":
      return `${c.kind}: ${c.name}`;
    case "host":
    case "authority":
      return `${c.kind}: ${JSON.stringify(c.input)}`;
    case "match":
      return `match: ${JSON.stringify(c.pattern)} ~ ${JSON.stringify(c.host)}:${c.port}`;
    case "path":
      return `path: ${JSON.stringify(c.patterns)} ~ ${JSON.stringify(c.path)}`;
    case "address":
      return `address: ${c.ip}`;
  }
}

const show = (v: unknown) => JSON.stringify(v);

/** Compare `actual` to `expected` for each key; returns the differences. */
function differences(expected: Record<string, unknown>, actual: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const [k, want] of Object.entries(expected)) {
    if (want === undefined) continue;
    if (show(actual[k]) !== show(want)) out.push(`${k}: expected ${show(want)}, got ${show(actual[k])}`);
  }
  return out;
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Run one case; returns what went wrong (empty when it passed). */
function runCase(c: ConformanceCase): string[] {
  switch (c.kind) {
    case "decide": {
      const policy = parsePolicy(c.policy);
      const url = new URL(c.request.url);
      const session = { sessionId: "conformance", tier: "conformance", ...(c.session?.mcpServerHosts ? { mcpServerHosts: c.session.mcpServerHosts } : {}) };
      const got = decide({ method: c.request.method, url, via: c.request.via, placeholders: c.request.placeholders }, policy, session);
      const { reason: wantReason, ...rest } = c.expect;
      const problems = differences(
        { ...rest, shadow: c.expect.shadow ?? false },
        { ...got, target: got.target.href, credentials: [...got.credentials] },
      );
      if (wantReason !== undefined && !got.reason.includes(wantReason)) problems.push(`reason: expected it to contain ${show(wantReason)}, got ${show(got.reason)}`);
      if (url.search.length > 1 && got.reason.includes(url.search.slice(1))) problems.push(`reason repeats the query: ${show(got.reason)}`);
      if (!got.reason) problems.push("reason is empty");
      return problems;
    }
    case "invalid-policy": {
      try {
        parsePolicy(c.policy);
      } catch (e) {
        if (!(e instanceof PolicyError)) return [`expected a PolicyError, got ${errorMessage(e)}`];
        if (e.code !== "invalid_policy") return [`code: expected "invalid_policy", got ${show(e.code)}`];
        return e.issues.some((i) => i.includes(c.issue)) ? [] : [`expected an issue containing ${show(c.issue)}, got ${show(e.issues)}`];
      }
      return ["expected the policy to be refused, and it was accepted"];
    }
    case "host": {
      let got: Record<string, unknown>;
      try {
        got = { ...normalizeHost(c.input) };
      } catch (e) {
        got = { error: errorMessage(e) };
      }
      if ("error" in c.expect) {
        return typeof got.error === "string" && got.error.includes(c.expect.error) ? [] : [`expected an error containing ${show(c.expect.error)}, got ${show(got)}`];
      }
      return differences({ ...c.expect, error: undefined }, got).concat("error" in got ? [`unexpected error ${show(got.error)}`] : []);
    }
    case "authority": {
      let got: Record<string, unknown>;
      try {
        got = { ...parseAuthority(c.input, c.defaultPort) };
      } catch (e) {
        got = { error: errorMessage(e) };
      }
      if ("error" in c.expect) {
        return typeof got.error === "string" && got.error.includes(c.expect.error) ? [] : [`expected an error containing ${show(c.expect.error)}, got ${show(got)}`];
      }
      return differences(c.expect, got).concat("error" in got ? [`unexpected error ${show(got.error)}`] : []);
    }
    case "match": {
      const got = hostMatches(c.pattern, c.host, c.port);
      return got === c.matches ? [] : [`expected ${c.matches}, got ${got}`];
    }
    case "path": {
      const check = pathProblem(c.path);
      const got = !check.ok ? "refused" : compilePaths(c.patterns).matches(check.decoded) ? "match" : "no-match";
      return got === c.expect ? [] : [`expected ${c.expect}, got ${got}${check.ok ? "" : ` (${check.problem})`}`];
    }
    case "address": {
      const got = classifyAddress(c.ip);
      return differences({ class: c.class, ok: c.ok }, { ...got });
    }
    case "check-address": {
      const got = checkAddress(c.ip, { target: new URL(c.target), privateAddressAllowed: c.privateAddressAllowed });
      return got.ok === c.ok ? [] : [`expected ok ${c.ok}, got ${got.ok} (${got.class}: ${got.reason})`];
    }
  }
}

/**
 * Run every case with the engine alone. `passed` counts the cases that passed; each failure is
 * one line naming the case and what differed. Never throws: an exception fails its case.
 */
export function runConformance(): { passed: number; failures: string[] } {
  let passed = 0;
  const failures: string[] = [];
  for (const c of CONFORMANCE_CASES) {
    let problems: string[];
    try {
      problems = runCase(c);
    } catch (e) {
      problems = [`threw ${errorMessage(e)}`];
    }
    if (problems.length) failures.push(`${caseName(c)}: ${problems.join("; ")}`);
    else passed++;
  }
  return { passed, failures };
}
