/**
 * A tiny authoritative DNS server for tests: UDP on 127.0.0.1, a random port, A and AAAA
 * answers from a table, NXDOMAIN for names it does not know, TTL 0 (so that no resolver caches
 * an answer), and a count of queries per name.
 *
 * A table entry may be a function of the query count, so that a name answers differently per
 * query (DNS rebinding: first a public address, then a loopback one). The count is per name and
 * per record type, starting at 1: a resolver that asks A and AAAA for one lookup gets the same
 * count in both.
 *
 * Wire format (RFC 1035 §4): the 12-byte header, one question (labels; a compression pointer in
 * the question is refused with FORMERR, no resolver sends one), the question echoed, and each
 * answer naming the question by a pointer to offset 12. Answers are expected to fit in one
 * 512-byte UDP message (about 28 A records); nothing is served over TCP.
 */
import dgram from "node:dgram";
import { isIP } from "node:net";

/** Name → addresses (IPv4 and IPv6 mixed), or a function of the query count (1 for the first query of that type). */
export type DnsTable = Record<string, string[] | ((count: number) => string[])>;

/** A running server. */
export interface DnsServer {
  /** The UDP port on 127.0.0.1 (use "127.0.0.1:<port>" as a resolver's server). */
  port: number;
  /**
   * Queries received for `name` (any letter case, trailing dot or not). With a type, those of
   * that type; without, the number of lookups: the most queries of any one type (a resolver
   * that asks A and AAAA for one lookup counts once).
   */
  queries(name: string, type?: "A" | "AAAA"): number;
  /** Stop answering and release the port. */
  close(): Promise<void>;
}

const TYPE_A = 1;
const TYPE_AAAA = 28;
const CLASS_IN = 1;
const HEADER_BYTES = 12;
const RCODE_FORMERR = 1;
const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;
const RCODE_NOTIMP = 4;

/** Start a server answering from `table` on 127.0.0.1 at a random free port. */
export async function startDnsServer(table: DnsTable): Promise<DnsServer> {
  const entries = new Map(Object.entries(table).map(([name, answer]) => [normalizeName(name), answer]));
  /** name → record type → queries received. */
  const counts = new Map<string, Map<number, number>>();
  const socket = dgram.createSocket("udp4");

  socket.on("message", (msg, from) => {
    const reply = answer(msg);
    if (reply) socket.send(reply, from.port, from.address);
  });

  function answer(msg: Buffer): Buffer | null {
    if (msg.length < HEADER_BYTES) return null; // not even a header: nothing to answer to
    const id = msg.readUInt16BE(0);
    const flags = msg.readUInt16BE(2);
    if (flags & 0x8000) return null; // a response, not a query
    const opcode = (flags >> 11) & 0xf;
    if (opcode !== 0) return reply(id, flags, RCODE_NOTIMP, null, []);
    const question = msg.readUInt16BE(4) >= 1 ? parseQuestion(msg, HEADER_BYTES) : null;
    if (!question) return reply(id, flags, RCODE_FORMERR, null, []);

    const perType = counts.get(question.name) ?? new Map<number, number>();
    counts.set(question.name, perType);
    const count = (perType.get(question.type) ?? 0) + 1;
    perType.set(question.type, count);

    const entry = entries.get(question.name);
    if (entry === undefined) return reply(id, flags, RCODE_NXDOMAIN, question.raw, []);
    let addresses: string[];
    try {
      addresses = typeof entry === "function" ? entry(count) : entry;
    } catch {
      return reply(id, flags, RCODE_SERVFAIL, question.raw, []);
    }
    const wanted = question.class !== CLASS_IN ? [] : question.type === TYPE_A ? addresses.filter((a) => isIP(a) === 4) : question.type === TYPE_AAAA ? addresses.filter((a) => isIP(a) === 6) : [];
    // A known name without records of the type asked: NOERROR with no answers (NODATA).
    return reply(id, flags, 0, question.raw, wanted.map((a) => record(question.type, isIP(a) === 4 ? ipv4Bytes(a) : ipv6Bytes(a))));
  }

  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => {
      socket.off("error", reject);
      resolve();
    });
  });

  return {
    port: socket.address().port,
    queries(name, type) {
      const perType = counts.get(normalizeName(name));
      if (!perType) return 0;
      if (type) return perType.get(type === "A" ? TYPE_A : TYPE_AAAA) ?? 0;
      return Math.max(0, ...perType.values());
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, "");
}

/** The question at `offset`: its name, type and class, and its raw bytes (echoed in the reply). */
function parseQuestion(msg: Buffer, offset: number): { name: string; type: number; class: number; raw: Buffer } | null {
  const labels: string[] = [];
  let at = offset;
  for (;;) {
    if (at >= msg.length) return null;
    const length = msg[at]!;
    if (length === 0) break;
    if (length & 0xc0) return null; // a compression pointer (or a reserved label type): not in a question
    if (at + 1 + length > msg.length) return null;
    labels.push(msg.toString("latin1", at + 1, at + 1 + length));
    at += 1 + length;
  }
  at += 1; // the root label
  if (at + 4 > msg.length) return null;
  return { name: normalizeName(labels.join(".")), type: msg.readUInt16BE(at), class: msg.readUInt16BE(at + 2), raw: msg.subarray(offset, at + 4) };
}

/**
 * A response: the query's id, QR and AA set, the query's opcode and RD bit kept, RA clear; the
 * question echoed when there is one; the answers.
 */
function reply(id: number, queryFlags: number, rcode: number, question: Buffer | null, answers: Buffer[]): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x8000 | (queryFlags & 0x7800) | 0x0400 | (queryFlags & 0x0100) | rcode, 2);
  header.writeUInt16BE(question ? 1 : 0, 4);
  header.writeUInt16BE(answers.length, 6);
  return Buffer.concat([header, question ?? Buffer.alloc(0), ...answers]);
}

/** One answer record: the name as a pointer to the question's (offset 12), class IN, TTL 0. */
function record(type: number, data: Buffer): Buffer {
  const fixed = Buffer.alloc(12);
  fixed.writeUInt16BE(0xc000 | HEADER_BYTES, 0);
  fixed.writeUInt16BE(type, 2);
  fixed.writeUInt16BE(CLASS_IN, 4);
  fixed.writeUInt32BE(0, 6); // TTL
  fixed.writeUInt16BE(data.length, 10);
  return Buffer.concat([fixed, data]);
}

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split(".").map(Number));
}

/** The 16 bytes of an IPv6 address ("::" shorthand and a dotted IPv4 tail allowed). */
function ipv6Bytes(address: string): Buffer {
  let text = address;
  if (text.includes(".")) {
    // "::ffff:192.0.2.1": the dotted tail becomes the last two groups.
    const cut = text.lastIndexOf(":") + 1;
    const [a, b, c, d] = text.slice(cut).split(".").map(Number) as [number, number, number, number];
    text = `${text.slice(0, cut)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const headGroups = head ? head.split(":") : [];
  const tailGroups = tail ? tail.split(":") : [];
  const zeros = tail === undefined ? 0 : 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...new Array<string>(zeros).fill("0"), ...tailGroups];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}
