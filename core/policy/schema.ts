/**
 * The egress policy file: the networking vocabulary of Managed Agents cloud environments
 * (`unrestricted`, or `limited` with `allowed_hosts`, `allow_package_managers`,
 * `allow_mcp_servers`), extended with deny rules, methods and paths, private services,
 * per-host credentials, limits and a shadow mode. One zod schema; `parsePolicy` fails with the
 * field's path and what was expected.
 *
 * Host patterns (`HostPattern`):
 *   "api.github.com"        that host, any port
 *   "api.github.com:443"    that host, that port only
 *   "*.github.com"          any subdomain of github.com (not github.com itself)
 *   "*"                     any host
 *   "93.184.216.34", "[2606:2800:220:1::]"  an address literal (normalised like a URL host)
 * Names are compared lowercased without a trailing dot.
 *
 * Path patterns: "/repos/**" (any depth), "/repos/*" (one segment), "/exact".
 */
import { z } from "zod";

export const HostPattern = z
  .string()
  .min(1)
  .max(260)
  .describe('a host, "host:port", "*.suffix" or "*"');

export const PathPattern = z.string().regex(/^\//, "a path pattern starts with /").describe('"/x", "/x/*" (one segment) or "/x/**" (any depth)');

export const Method = z
  .string()
  .regex(/^[A-Za-z]+$/)
  .transform((m) => m.toUpperCase());

/** One allow or deny rule. A request matches when its host, method and path all match. */
export const Rule = z.strictObject({
  /** Named in audit records as the rule that decided; default `allow[i]` / `deny[i]`. */
  name: z.string().min(1).max(100).optional(),
  hosts: z.array(HostPattern).min(1),
  /** Default: any method. */
  methods: z.array(Method).optional(),
  /** Default: any path. Matched against the URL's pathname (percent-decoded once). */
  paths: z.array(PathPattern).optional(),
});
export type Rule = z.output<typeof Rule>;

/** Where a credential's real value comes from. Read by the host only, never by a sandbox. */
export const SecretRef = z.union([
  z.strictObject({ env: z.string().min(1) }),
  z.strictObject({ file: z.string().min(1) }),
  z.strictObject({ resolver: z.string().min(1), key: z.string().optional() }),
]);
export type SecretRef = z.output<typeof SecretRef>;

/**
 * A credential: sandboxes see only its placeholder `DEFT_SECRET_<NAME>`; the gateway swaps in
 * the real value on the way out, for requests to `hosts` only, in the places `in` names.
 */
export const Credential = z.strictObject({
  /** Upper-case name; the placeholder is `DEFT_SECRET_<name>`. */
  name: z.string().regex(/^[A-Z][A-Z0-9_]{0,63}$/, "credential names are upper case: A-Z, 0-9, _"),
  secret: SecretRef,
  /** The only hosts this credential may be sent to. */
  hosts: z.array(HostPattern).min(1),
  /** Where the placeholder is swapped (default: headers only). */
  in: z.array(z.enum(["header", "query", "body"])).min(1).default(["header"]),
  /** Refuse requests to `hosts` that do not carry this credential's placeholder. */
  require: z.boolean().default(false),
});
export type Credential = z.output<typeof Credential>;

/** A private service: a name the sandbox may call, mapped to an internal URL it never sees. */
export const Service = z.strictObject({
  url: z.url(),
  methods: z.array(Method).optional(),
  paths: z.array(PathPattern).optional(),
  description: z.string().max(500).optional(),
});
export type Service = z.output<typeof Service>;

export const Networking = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("unrestricted") }),
  z.strictObject({
    type: z.literal("limited"),
    allowed_hosts: z.array(HostPattern).default([]),
    allow_package_managers: z.boolean().default(false),
    allow_mcp_servers: z.boolean().default(false),
  }),
]);
export type Networking = z.output<typeof Networking>;

export const Limits = z.strictObject({
  /** Largest request body sent upstream. */
  request_body_bytes: z.number().int().min(0).default(10 * 1024 * 1024),
  /** Largest response body handed back; past it the body is cut with an error. */
  response_body_bytes: z.number().int().min(0).default(100 * 1024 * 1024),
  /** Requests per minute per session (0: no limit). */
  requests_per_minute: z.number().int().min(0).default(600),
  /** Whole request, headers to last byte. */
  timeout_ms: z.number().int().min(1).default(60_000),
  /** Redirects followed per request, each re-checked. */
  max_redirects: z.number().int().min(0).max(20).default(5),
});
export type Limits = z.output<typeof Limits>;

export const PolicySchema = z.strictObject({
  version: z.literal(1).default(1),
  /** enforce: deny what the policy denies. shadow: allow it, and audit it as `shadow-deny`. */
  mode: z.enum(["enforce", "shadow"]).default("enforce"),
  networking: Networking.default({ type: "limited", allowed_hosts: [], allow_package_managers: false, allow_mcp_servers: false }),
  /** Extra allow rules with methods and paths (on top of `networking.allowed_hosts`). */
  allow: z.array(Rule).default([]),
  /** Deny rules win over every allow, `unrestricted` included. */
  deny: z.array(Rule).default([]),
  services: z.record(z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, "service names are lower case: a-z, 0-9, -"), Service).default({}),
  credentials: z.array(Credential).default([]),
  limits: Limits.default(Limits.parse({})),
});
export type Policy = z.output<typeof PolicySchema>;
export type PolicyInput = z.input<typeof PolicySchema>;
