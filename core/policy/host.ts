/**
 * Hosts: one normal form for every spelling, authorities (`host:port`), and host patterns.
 *
 * Normal form (`normalizeHost`):
 *   - names are lower case, with one trailing dot removed; non-ASCII names become punycode;
 *   - IPv4 in any spelling a WHATWG URL accepts becomes a dotted quad (`0x7f.1` → `127.0.0.1`);
 *   - IPv6 loses its brackets and is printed compressed, lower case (`[0:0::1]` → `::1`);
 *   - IPv4-mapped and IPv4-compatible IPv6 (`::ffff:127.0.0.1`, `::ffff:7f00:1`, `::7f00:1`)
 *     become the IPv4 address they carry, so a pattern or check written for the IPv4 address
 *     holds whichever way the sandbox spells it.
 * Anything else (spaces, `@`, `%`, empty labels, more than 253 characters) is a PolicyError.
 *
 * Host patterns (`compileHostPattern`), as in schema.ts:
 *   "api.github.com"        that host, any port
 *   "api.github.com:443"    that host, that port only
 *   "*.github.com"          strict subdomains of github.com (not github.com itself)
 *   "*" or "*:8080"         any host (on any port, or on that port)
 *   "93.184.216.34", "0x5db8d822", "[2606:2800:220:1::]", "[::1]:8443"  address literals, in
 *                           any spelling (normalised like a host); unbracketed IPv6 text is
 *                           read as an address with no port.
 */
import { embeddedIPv4, endsInNumber, formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from "./ip.ts";
import { PolicyError } from "./policy-error.ts";

/** A host in normal form. `host` never has brackets. */
export interface NormalizedHost {
  kind: "ipv4" | "ipv6" | "name";
  host: string;
}

/** A host and port, as in a CONNECT target or a Host header. */
export interface Authority extends NormalizedHost {
  port: number;
}

/** The longest host name DNS can carry (without the trailing dot). */
export const MAX_HOST_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;

function fail(raw: string, why: string): never {
  throw new PolicyError(`invalid host ${JSON.stringify(raw.length > 80 ? `${raw.slice(0, 80)}...` : raw)}: ${why}`);
}

function fromIPv6(raw: string, text: string): NormalizedHost {
  const pieces = parseIPv6(text);
  if (!pieces) fail(raw, "not a valid IPv6 address");
  const v4 = embeddedIPv4(pieces);
  if (v4 !== undefined) return { kind: "ipv4", host: formatIPv4(v4) };
  return { kind: "ipv6", host: formatIPv6(pieces) };
}

/**
 * The normal form of a host as written in a URL, a Host header or a policy. Throws a
 * PolicyError naming the problem when it is not a valid host.
 */
export function normalizeHost(raw: string): NormalizedHost {
  if (raw === "") fail(raw, "empty");
  if (raw.startsWith("[")) {
    if (!raw.endsWith("]")) fail(raw, "an IPv6 address opened with [ must end with ]");
    return fromIPv6(raw, raw.slice(1, -1));
  }
  if (raw.includes(":")) return fromIPv6(raw, raw);
  const bad = /[^A-Za-z0-9._\-\u0080-\uffff]/.exec(raw);
  if (bad) {
    const c = bad[0];
    if (c === "%") fail(raw, "percent-encoding is not allowed in a host");
    fail(raw, `the character ${JSON.stringify(c)} is not allowed in a host`);
  }
  const host = raw.endsWith(".") ? raw.slice(0, -1) : raw;
  if (host === "") fail(raw, "empty");
  if (endsInNumber(host)) {
    const v4 = parseIPv4(host);
    if (v4 === undefined) fail(raw, "ends in a number but is not a valid IPv4 address");
    return { kind: "ipv4", host: formatIPv4(v4) };
  }
  if (/[^\x00-\x7f]/.test(host)) {
    // International names: the URL parser applies IDNA (punycode, and mappings such as
    // full-width digits and dots to ASCII), then the ASCII result is normalised like any host.
    let ascii: string;
    try {
      ascii = new URL(`http://${host}/`).hostname;
    } catch {
      fail(raw, "not a valid international domain name");
    }
    if (/[^\x00-\x7f]/.test(ascii)) fail(raw, "not a valid international domain name");
    return normalizeHost(ascii);
  }
  const name = host.toLowerCase();
  if (name.length > MAX_HOST_LENGTH) fail(raw, `longer than ${MAX_HOST_LENGTH} characters`);
  for (const label of name.split(".")) {
    if (label === "") fail(raw, "empty label (two dots in a row, or a leading dot)");
    if (label.length > MAX_LABEL_LENGTH) fail(raw, `a label is longer than ${MAX_LABEL_LENGTH} characters`);
  }
  return { kind: "name", host: name };
}

/** A port as text: 1 to 65535, digits only. */
function parsePort(raw: string, text: string): number {
  if (!/^[0-9]{1,5}$/.test(text)) fail(raw, `port ${JSON.stringify(text)} is not a number`);
  const port = Number(text);
  if (port < 1 || port > 65535) fail(raw, `port ${port} is out of range (1-65535)`);
  return port;
}

/**
 * Split `host:port`, `[v6]:port`, `host` or `[v6]` (a CONNECT target or a Host header) into a
 * normalised host and a port (`defaultPort` when none is given). Throws a PolicyError when the
 * host or port is invalid, or when IPv6 text is not bracketed (it would be ambiguous).
 */
export function parseAuthority(raw: string, defaultPort: number): Authority {
  if (raw.startsWith("[")) {
    const close = raw.indexOf("]");
    if (close < 0) fail(raw, "an IPv6 address opened with [ must end with ]");
    const rest = raw.slice(close + 1);
    if (rest !== "" && !rest.startsWith(":")) fail(raw, "only :port may follow ]");
    const port = rest === "" ? defaultPort : parsePort(raw, rest.slice(1));
    return { ...normalizeHost(raw.slice(0, close + 1)), port };
  }
  const colons = raw.split(":").length - 1;
  if (colons > 1) fail(raw, "an IPv6 address in an authority must be in brackets: [::1]:443");
  if (colons === 1) {
    const at = raw.indexOf(":");
    return { ...normalizeHost(raw.slice(0, at)), port: parsePort(raw, raw.slice(at + 1)) };
  }
  return { ...normalizeHost(raw), port: defaultPort };
}

/** A compiled host pattern. */
export interface HostMatcher {
  /** The pattern as written, for messages. */
  readonly pattern: string;
  /** True when the pattern only names a port of any host, or any host: `*`, `*:443`. */
  readonly any: boolean;
  /** Does the pattern cover this (normalised) host on this port? */
  matches(host: NormalizedHost, port: number): boolean;
}

/**
 * Compile a host pattern (see the top of this file). Throws a PolicyError naming the pattern
 * when it is not one.
 */
export function compileHostPattern(pattern: string): HostMatcher {
  let hostPart = pattern;
  let port: number | undefined;
  if (pattern.startsWith("[")) {
    const a = parseAuthority(pattern, 0);
    return exactMatcher(pattern, a, a.port === 0 ? undefined : a.port);
  }
  const colons = pattern.split(":").length - 1;
  if (colons > 1) return exactMatcher(pattern, normalizeHost(pattern), undefined);
  if (colons === 1) {
    const at = pattern.indexOf(":");
    hostPart = pattern.slice(0, at);
    port = parsePort(pattern, pattern.slice(at + 1));
  }
  const portOk = (p: number) => port === undefined || p === port;
  if (hostPart === "*") {
    return { pattern, any: true, matches: (_h, p) => portOk(p) };
  }
  if (hostPart.startsWith("*.")) {
    const suffix = normalizeHost(hostPart.slice(2));
    if (suffix.kind !== "name") {
      throw new PolicyError(`invalid host pattern ${JSON.stringify(pattern)}: "*." must be followed by a domain name, not an address`);
    }
    const dotted = `.${suffix.host}`;
    return { pattern, any: false, matches: (h, p) => h.kind === "name" && h.host.endsWith(dotted) && portOk(p) };
  }
  if (hostPart.includes("*")) {
    throw new PolicyError(`invalid host pattern ${JSON.stringify(pattern)}: "*" is allowed only as the whole host or as a leading "*."`);
  }
  return exactMatcher(pattern, normalizeHost(hostPart), port);
}

function exactMatcher(pattern: string, want: NormalizedHost, port: number | undefined): HostMatcher {
  return {
    pattern,
    any: false,
    matches: (h, p) => h.kind === want.kind && h.host === want.host && (port === undefined || p === port),
  };
}

/**
 * Does `pattern` cover `host` (any spelling) on `port`? Convenience over compileHostPattern and
 * normalizeHost; both throw a PolicyError when invalid. The engine compiles patterns once instead.
 */
export function hostMatches(pattern: string, host: string, port: number): boolean {
  return compileHostPattern(pattern).matches(normalizeHost(host), port);
}
