/**
 * The address check: after a name is resolved (or when the URL names an address), is the address
 * one a sandbox may reach? Pure: no DNS, no clock. The gateway checks every address a name
 * resolves to and connects only to a checked one.
 *
 * Refused classes (everything else is "public"):
 *   IPv4                                   IPv6
 *   loopback     127.0.0.0/8               ::1
 *   unspecified  0.0.0.0/8                 ::
 *   private      10/8 172.16/12 192.168/16 fc00::/7, 64:ff9b:1::/48 (local-use NAT64)
 *   link-local   169.254.0.0/16            fe80::/10
 *   metadata     169.254.169.254, 169.254.170.2, 100.100.100.200, fd00:ec2::254
 *   cgnat        100.64.0.0/10
 *   multicast    224.0.0.0/4               ff00::/8
 *   broadcast    255.255.255.255
 *   reserved     240.0.0.0/4               anything outside 2000::/3 not listed above
 *   benchmarking 198.18.0.0/15
 *   ietf         192.0.0.0/24
 *   teredo                                 2001::/32 (the IPv4 inside is obfuscated; refused)
 * IPv4-mapped and IPv4-compatible IPv6 are judged as the IPv4 they carry (normalizeHost turns
 * them into IPv4). 6to4 (2002::/16) and NAT64 (64:ff9b::/96) carry an IPv4 address too: they
 * are judged by it, so `2002:7f00:1::` is refused as loopback and `64:ff9b::a9fe:a9fe` as
 * metadata.
 *
 * `checkAddress` adds the decision: a non-public address is allowed only when a private service
 * names the destination (`decision.privateAddressAllowed`), and a metadata address only when the
 * service's URL names that very address. The address check is never shadowed.
 */
import { normalizeHost } from "./host.ts";
import { formatIPv4, parseIPv6 } from "./ip.ts";
import type { AddressVerdict, Decision } from "./types.ts";

/** Cloud metadata endpoints (AWS, GCP and Azure share 169.254.169.254; ECS; Alibaba; AWS IPv6). */
export const METADATA_ADDRESSES: readonly string[] = ["169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254"];

interface Range {
  base: number;
  bits: number;
  class: string;
  reason: string;
}

/** IPv4 ranges in the order they are tried (most specific first). */
const IPV4_RANGES: readonly Range[] = [
  { base: ip4(255, 255, 255, 255), bits: 32, class: "broadcast", reason: "the limited broadcast address" },
  { base: ip4(0, 0, 0, 0), bits: 8, class: "unspecified", reason: "0.0.0.0/8 means this host or this network" },
  { base: ip4(127, 0, 0, 0), bits: 8, class: "loopback", reason: "a loopback address (127.0.0.0/8) reaches the host itself" },
  { base: ip4(10, 0, 0, 0), bits: 8, class: "private", reason: "a private network address (10.0.0.0/8)" },
  { base: ip4(172, 16, 0, 0), bits: 12, class: "private", reason: "a private network address (172.16.0.0/12)" },
  { base: ip4(192, 168, 0, 0), bits: 16, class: "private", reason: "a private network address (192.168.0.0/16)" },
  { base: ip4(169, 254, 0, 0), bits: 16, class: "link-local", reason: "a link-local address (169.254.0.0/16)" },
  { base: ip4(100, 64, 0, 0), bits: 10, class: "cgnat", reason: "a carrier-grade NAT address (100.64.0.0/10)" },
  { base: ip4(224, 0, 0, 0), bits: 4, class: "multicast", reason: "a multicast address (224.0.0.0/4)" },
  { base: ip4(240, 0, 0, 0), bits: 4, class: "reserved", reason: "a reserved address (240.0.0.0/4)" },
  { base: ip4(198, 18, 0, 0), bits: 15, class: "benchmarking", reason: "a benchmarking address (198.18.0.0/15)" },
  { base: ip4(192, 0, 0, 0), bits: 24, class: "ietf", reason: "an IETF protocol assignment (192.0.0.0/24)" },
];

function ip4(a: number, b: number, c: number, d: number): number {
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

function inRange(value: number, r: Range): boolean {
  const mask = r.bits === 0 ? 0 : (0xffffffff << (32 - r.bits)) >>> 0;
  return ((value & mask) >>> 0) === r.base;
}

const PUBLIC: AddressVerdict = { ok: true, class: "public", reason: "a public address" };

function metadata(address: string): AddressVerdict {
  return { ok: false, class: "metadata", reason: `${address} is a cloud metadata endpoint` };
}

function classifyIPv4(value: number): AddressVerdict {
  const text = formatIPv4(value);
  if (METADATA_ADDRESSES.includes(text)) return metadata(text);
  for (const r of IPV4_RANGES) if (inRange(value, r)) return { ok: false, class: r.class, reason: r.reason };
  return PUBLIC;
}

/** Judge an IPv6 address by the IPv4 address it carries (6to4, NAT64). */
function byEmbedded(kind: string, v4: number): AddressVerdict {
  const inner = classifyIPv4(v4);
  if (inner.ok) return PUBLIC;
  return { ok: false, class: inner.class, reason: `a ${kind} address carrying ${formatIPv4(v4)}: ${inner.reason}` };
}

function classifyIPv6(p: readonly number[], text: string): AddressVerdict {
  const zeros = (from: number, to: number) => p.slice(from, to).every((x) => x === 0);
  if (METADATA_ADDRESSES.includes(text)) return metadata(text);
  if (zeros(0, 8)) return { ok: false, class: "unspecified", reason: ":: is the unspecified address" };
  if (zeros(0, 7) && p[7] === 1) return { ok: false, class: "loopback", reason: "::1 reaches the host itself" };
  if (p[0] === 0x64 && p[1] === 0xff9b && zeros(2, 6)) return byEmbedded("NAT64", p[6]! * 0x10000 + p[7]!);
  if (p[0] === 0x64 && p[1] === 0xff9b && p[2] === 1) return { ok: false, class: "private", reason: "a local-use NAT64 address (64:ff9b:1::/48)" };
  if (p[0] === 0x2002) return byEmbedded("6to4", p[1]! * 0x10000 + p[2]!);
  if (p[0] === 0x2001 && p[1] === 0) return { ok: false, class: "teredo", reason: "a Teredo tunnel address (2001::/32)" };
  const first = p[0]!;
  if ((first & 0xfe00) === 0xfc00) return { ok: false, class: "private", reason: "a unique local address (fc00::/7)" };
  if ((first & 0xffc0) === 0xfe80) return { ok: false, class: "link-local", reason: "a link-local address (fe80::/10)" };
  if ((first & 0xff00) === 0xff00) return { ok: false, class: "multicast", reason: "a multicast address (ff00::/8)" };
  if ((first & 0xe000) !== 0x2000) return { ok: false, class: "reserved", reason: "outside global unicast (2000::/3)" };
  return PUBLIC;
}

/**
 * The class of one address (any spelling of IPv4 or IPv6, brackets allowed). `ok` is true only
 * for "public". Text that is not an address is `{ok: false, class: "invalid"}`, never a throw.
 */
export function classifyAddress(ip: string): AddressVerdict {
  let h;
  try {
    h = normalizeHost(ip);
  } catch (e) {
    return { ok: false, class: "invalid", reason: e instanceof Error ? e.message : "not an address" };
  }
  if (h.kind === "name") return { ok: false, class: "invalid", reason: `${JSON.stringify(ip)} is a name, not an address` };
  if (h.kind === "ipv4") {
    const [a, b, c, d] = h.host.split(".").map(Number) as [number, number, number, number];
    return classifyIPv4(ip4(a, b, c, d));
  }
  return classifyIPv6(parseIPv6(h.host)!, h.host);
}

/**
 * May the request this decision allowed connect to `ip`? Public addresses: yes. Other classes:
 * only when a private service names the destination (`decision.privateAddressAllowed`).
 * Metadata addresses: only when the service's URL names that very address (so a service that
 * resolves somewhere private can still never be pointed at a metadata endpoint by DNS).
 */
export function checkAddress(ip: string, decision: Pick<Decision, "privateAddressAllowed" | "target">): AddressVerdict {
  const v = classifyAddress(ip);
  if (v.ok || v.class === "invalid") return v;
  if (!decision.privateAddressAllowed) return { ...v, ok: false, reason: `${v.reason}; only a private service may reach it` };
  if (v.class === "metadata") {
    let named = false;
    try {
      const target = normalizeHost(decision.target.hostname);
      named = target.kind !== "name" && target.host === normalizeHost(ip).host;
    } catch {
      named = false;
    }
    if (!named) return { ...v, ok: false, reason: `${v.reason}; reachable only by a service whose URL names this address` };
  }
  return { ...v, ok: true, reason: `${v.reason}; allowed for this private service` };
}
