/**
 * IP address text: parsing and printing, written out here (not left to each runtime's `URL`)
 * so that every runtime reads an address the same way.
 *
 * - IPv4 follows the WHATWG URL host parser, so every spelling a URL accepts is read the way a
 *   URL would read it: `2130706433`, `0177.0.0.1` (octal), `0x7f.0.0.1` (hex), `127.1` (short).
 * - IPv6 follows RFC 4291 text (with `::` and a trailing dotted IPv4) and prints as RFC 5952 /
 *   WHATWG do: lower case, no leading zeros, the longest run of two or more zero pieces as `::`.
 */

/**
 * True when a host "ends in a number" (WHATWG): its last dot-separated label (ignoring one
 * trailing dot) is all digits or a `0x` number, so the URL parser must read it as IPv4 (and
 * fail if it is not one).
 */
export function endsInNumber(host: string): boolean {
  const parts = host.split(".");
  if (parts[parts.length - 1] === "") {
    if (parts.length === 1) return false;
    parts.pop();
  }
  const last = parts[parts.length - 1]!;
  if (last !== "" && /^[0-9]+$/.test(last)) return true;
  return /^0[xX][0-9a-fA-F]*$/.test(last);
}

/** One WHATWG "IPv4 number": decimal, `0x` hex, or octal with a leading 0. Undefined if invalid. */
function ipv4Number(part: string): number | undefined {
  if (part === "") return undefined;
  let radix = 10;
  let digits = part;
  if (/^0[xX]/.test(part)) {
    radix = 16;
    digits = part.slice(2);
  } else if (part.length > 1 && part.startsWith("0")) {
    radix = 8;
    digits = part.slice(1);
  }
  if (digits === "") return 0;
  const valid = radix === 16 ? /^[0-9a-fA-F]+$/ : radix === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
  if (!valid.test(digits)) return undefined;
  // Long digit strings are out of range anyway; parseInt stays exact well past 2^32.
  if (digits.length > 12) return Number.POSITIVE_INFINITY;
  return parseInt(digits, radix);
}

/**
 * Parse an IPv4 address in any spelling the WHATWG URL parser accepts; returns the 32-bit value,
 * or undefined when the text is not an IPv4 address.
 */
export function parseIPv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts[parts.length - 1] === "" && parts.length > 1) parts.pop();
  if (parts.length > 4) return undefined;
  const numbers: number[] = [];
  for (const p of parts) {
    const n = ipv4Number(p);
    if (n === undefined) return undefined;
    numbers.push(n);
  }
  const last = numbers.pop()!;
  for (const n of numbers) if (n > 255) return undefined;
  if (last >= 256 ** (5 - parts.length)) return undefined;
  let value = last;
  numbers.forEach((n, i) => (value += n * 256 ** (3 - i)));
  return value;
}

/** Dotted-quad text of a 32-bit IPv4 value. */
export function formatIPv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join(".");
}

/** A strict dotted-quad (four decimal parts, no leading zeros), as allowed at the end of IPv6 text. */
function strictDottedQuad(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    value = value * 256 + n;
  }
  return value;
}

/**
 * Parse IPv6 text (no brackets, no zone id) into its eight 16-bit pieces; undefined when invalid.
 * Accepts `::` once and a dotted IPv4 in the last 32 bits (`::ffff:127.0.0.1`).
 */
export function parseIPv6(text: string): number[] | undefined {
  if (text === "" || !/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const readGroups = (s: string): number[] | undefined => {
    if (s === "") return [];
    const groups = s.split(":");
    const out: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      if (g.includes(".")) {
        // A dotted IPv4 is only allowed as the very last group.
        if (i !== groups.length - 1) return undefined;
        const v4 = strictDottedQuad(g);
        if (v4 === undefined) return undefined;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const head = readGroups(halves[0]!);
  if (!head) return undefined;
  if (halves.length === 1) return head.length === 8 ? head : undefined;
  // A dotted IPv4 may not sit before the `::`.
  if (halves[0]!.includes(".")) return undefined;
  const tail = readGroups(halves[1]!);
  if (!tail) return undefined;
  const missing = 8 - head.length - tail.length;
  // `::` stands for at least one zero piece.
  if (missing < 1) return undefined;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
}

/** Compressed lower-case text of eight IPv6 pieces (RFC 5952, as a WHATWG URL prints it). */
export function formatIPv6(pieces: readonly number[]): string {
  // The longest run of two or more zero pieces (the first, on a tie) becomes `::`.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (pieces[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && pieces[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) => pieces.slice(from, to).map((p) => p.toString(16));
  if (bestStart < 0) return hex(0, 8).join(":");
  return `${hex(0, bestStart).join(":")}::${hex(bestStart + bestLength, 8).join(":")}`;
}

/**
 * The IPv4 address an IPv6 address stands for, when it is IPv4-mapped (`::ffff:a.b.c.d`) or
 * IPv4-compatible (`::a.b.c.d`; but `::` and `::1` are the IPv6 unspecified and loopback
 * addresses, not IPv4). Undefined for every other IPv6 address.
 */
export function embeddedIPv4(pieces: readonly number[]): number | undefined {
  const firstFiveZero = pieces.slice(0, 5).every((p) => p === 0);
  if (!firstFiveZero) return undefined;
  const v4 = (pieces[6]! * 0x10000 + pieces[7]!) >>> 0;
  if (pieces[5] === 0xffff) return v4;
  if (pieces[5] === 0 && v4 > 1) return v4;
  return undefined;
}
