import { describe, expect, it } from "vitest";
import { type ReplacePair, replaceStream, scanStream, StreamAbortedError, StreamLimitError } from "./stream-replace.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const isNameByte = (b: number) => (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39) || b === 0x5f;

function pair(from: string, to: string, name = from, followedBy?: (b: number) => boolean): ReplacePair {
  return { from: enc.encode(from), to: enc.encode(to), name, followedBy };
}

/** A deterministic PRNG (mulberry32), so that a failing chunking can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (i < chunks.length) c.enqueue(chunks[i++]!);
      else c.close();
    },
  });
}

/** The chunks of a stream, as they are read. */
async function* chunksOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    yield value;
  }
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const chunk of chunksOf(stream)) out.push(chunk);
  return out;
}

function join(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

async function replaceChunks(chunks: Uint8Array[], pairs: ReplacePair[]): Promise<{ text: string; names: string[] }> {
  const names: string[] = [];
  const out = await collect(streamOf(chunks).pipeThrough(replaceStream(pairs, { onMatch: (n) => names.push(n) })));
  return { text: dec.decode(join(out)), names };
}

/** Split `bytes` at the given offsets. */
function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(bytes.slice(prev, cut));
    prev = cut;
  }
  return out;
}

function randomChunks(bytes: Uint8Array, random: () => number, maxChunk: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    // Zero-length chunks included on purpose.
    const n = Math.floor(random() * (maxChunk + 1));
    out.push(bytes.slice(at, at + n));
    at += n;
  }
  return out;
}

/** The rules in one obvious pass over the whole input: leftmost, then longest, first listed on a tie. */
function reference(input: Uint8Array, pairs: ReplacePair[]): { text: string; names: string[] } {
  const ordered = pairs.map((p, i) => ({ p, i })).sort((a, b) => b.p.from.length - a.p.from.length || a.i - b.i);
  const out: number[] = [];
  const names: string[] = [];
  let i = 0;
  while (i < input.length) {
    const hit = ordered.find(({ p }) => {
      const n = p.from.length;
      if (i + n > input.length) return false;
      for (let k = 0; k < n; k++) if (input[i + k] !== p.from[k]) return false;
      return !p.followedBy || i + n === input.length || p.followedBy(input[i + n]!);
    });
    if (hit) {
      out.push(...hit.p.to);
      names.push(hit.p.name);
      i += hit.p.from.length;
    } else out.push(input[i++]!);
  }
  return { text: dec.decode(new Uint8Array(out)), names };
}

describe("replaceStream", () => {
  const pairs = [pair("DEFT_SECRET_GITHUB", "ghp_real", "GITHUB", (b) => !isNameByte(b)), pair("DEFT_SECRET_GITHUB_APP", "app-value", "GITHUB_APP", (b) => !isNameByte(b)), pair("tok", "<T>", "TOK")];
  const text = "DEFT_SECRET_GITHUB at start; DEFT_SECRET_GITHUB_APP, DEFT_SECRET_GITHUB_APPX, DEFT_SECRET_GITHUBx tok;toktok DEFT_SECRET_GITHU DEFT_SECRET_GITHUB";
  const expected = "ghp_real at start; app-value, DEFT_SECRET_GITHUB_APPX, ghp_realx <T>;<T><T> DEFT_SECRET_GITHU ghp_real";

  it("replaces patterns at the start, the end, adjacent, and respects name boundaries", async () => {
    const r = await replaceChunks([enc.encode(text)], pairs);
    expect(r.text).toBe(expected);
    expect(r.names).toEqual(["GITHUB", "GITHUB_APP", "GITHUB", "TOK", "TOK", "TOK", "GITHUB"]);
  });

  it("gives the same answer when the input is split at every offset, or fed one byte at a time", async () => {
    const bytes = enc.encode(text);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const r = await replaceChunks(splitAt(bytes, [cut]), pairs);
      expect(r.text, `cut at ${cut}`).toBe(expected);
    }
    const oneByOne = await replaceChunks(splitAt(bytes, [...bytes.keys()].slice(1)), pairs);
    expect(oneByOne.text).toBe(expected);
    expect(oneByOne.names).toHaveLength(7);
  });

  it("matches a one-pass reference on random inputs and random chunkings (overlapping prefixes, empty chunks)", async () => {
    const random = prng(42);
    // A tiny alphabet makes overlaps, shared prefixes and near misses frequent.
    const patternSets: ReplacePair[][] = [
      [pair("ab", "X"), pair("abc", "Y"), pair("bca", "Z")],
      [pair("aa", ""), pair("aaa", "3"), pair("a", "1")],
      [pair("abab", "Q"), pair("bab", "R", "bab", (b) => b !== 0x61), pair("c", "cc")],
      [pair("abc", "first", "first"), pair("abc", "second", "second"), pair("cab", "S")],
      // Every pattern 8 bytes or longer: the skipping search.
      [pair("abcabcab", "L1"), pair("bcabcabca", "L2"), pair("aabbccaabb", "L3", "L3", (b) => b !== 0x63)],
      [pair("aaaaaaaa", "8a"), pair("aaaaaaaaab", "9a"), pair("baaaaaaaaa", "B")],
    ];
    for (let round = 0; round < 600; round++) {
      const set = patternSets[round % patternSets.length]!;
      const length = Math.floor(random() * 120);
      const input = new Uint8Array(length).map(() => 0x61 + Math.floor(random() * 3));
      const want = reference(input, set);
      const got = await replaceChunks(randomChunks(input, random, 1 + Math.floor(random() * 6)), set);
      expect(got, `round ${round}: ${dec.decode(input)}`).toEqual(want);
      expect(want.names.includes("second")).toBe(false);
    }
  });

  it("passes a chunk that holds no pattern on as the same object (zero-copy), and skips empty chunks", async () => {
    const a = enc.encode("nothing to see here");
    const b = enc.encode("nor here");
    const out = await collect(streamOf([a, new Uint8Array(0), b]).pipeThrough(replaceStream([pair("SECRET", "x")])));
    expect(out).toHaveLength(2);
    expect(out[0]).toBe(a);
    expect(out[1]).toBe(b);
  });

  it("holds back at most the longest pattern − 1 bytes, and only while they may start a match", async () => {
    const transform = replaceStream([pair("DEFT_SECRET_X", "v"), pair("Q", "q")]);
    const writer = transform.writable.getWriter();
    const seen: string[] = [];
    const reading = (async () => {
      for await (const c of chunksOf(transform.readable)) seen.push(dec.decode(c));
    })();
    const settle = () => new Promise((r) => setTimeout(r, 5));
    await writer.write(enc.encode("hello DEFT_SECRET"));
    await settle();
    expect(seen.join("")).toBe("hello ");
    await writer.write(enc.encode("_Y and DEFT_SECRET_"));
    await settle();
    expect(seen.join("")).toBe("hello DEFT_SECRET_Y and ");
    await writer.write(enc.encode("X!"));
    await settle();
    expect(seen.join("")).toBe("hello DEFT_SECRET_Y and v!");
    await writer.write(enc.encode("DEFT"));
    await writer.close();
    await reading;
    expect(seen.join("")).toBe("hello DEFT_SECRET_Y and v!DEFT");
  });

  it("decides a followedBy pattern at the end of the stream as a match", async () => {
    const r = await replaceChunks([enc.encode("x DEFT_SECRET_A")], [pair("DEFT_SECRET_A", "a", "A", (b) => !isNameByte(b))]);
    expect(r.text).toBe("x a");
  });

  it("finds long patterns (the skipping search) split at every offset", async () => {
    const long = [pair("DEFT_SECRET_GITHUB", "G", "GITHUB", (b) => !isNameByte(b)), pair("Zk9-super-secret-value", "S")];
    const bytes = enc.encode("lower case text DEFT_SECRET_GITHUB then Zk9-super-secret-value, Zk9-super-secret-valu DEFT_SECRET_GITHUB");
    for (let cut = 0; cut <= bytes.length; cut++) {
      for (const second of [cut + 1, cut + 7, cut + 20]) {
        const cuts = second <= bytes.length ? [cut, second] : [cut];
        const r = await replaceChunks(splitAt(bytes, cuts), long);
        expect(r.text, `cuts ${cuts}`).toBe("lower case text G then S, Zk9-super-secret-valu G");
      }
    }
  });

  it("passes everything through when there are no patterns", async () => {
    const r = await replaceChunks([enc.encode("abc"), enc.encode("def")], []);
    expect(r.text).toBe("abcdef");
  });

  it("rejects an empty pattern", () => {
    expect(() => replaceStream([pair("", "x", "EMPTY")])).toThrow(/EMPTY is empty/);
  });

  it("errors the stream past maxBytes (counted after replacement) and calls onLimit once", async () => {
    let limits = 0;
    const stream = streamOf([enc.encode("12345"), enc.encode("6789S"), enc.encode("0")]).pipeThrough(
      replaceStream([pair("S", "long replacement")], { maxBytes: 12, onLimit: () => limits++ }),
    );
    const err = await collect(stream).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StreamLimitError);
    expect((err as StreamLimitError).code).toBe("stream_limit");
    expect(limits).toBe(1);
    const ok = await collect(streamOf([enc.encode("12345"), enc.encode("6789S")]).pipeThrough(replaceStream([pair("S", "s")], { maxBytes: 10 })));
    expect(dec.decode(join(ok))).toBe("123456789s");
  });
});

describe("scanStream", () => {
  const patterns = [{ pattern: enc.encode("DEFT_SECRET_NPM"), name: "NPM", followedBy: (b: number) => !isNameByte(b) }];

  it("passes bytes through unchanged and reports an occurrence split across chunks", async () => {
    const text = "a DEFT_SECRET_NPM b DEFT_SECRET_NPMX c";
    const chunks = splitAt(enc.encode(text), [8, 9, 25]);
    const found: string[] = [];
    const out = await collect(streamOf(chunks).pipeThrough(scanStream(patterns, (n) => void found.push(n))));
    expect(dec.decode(join(out))).toBe(text);
    expect(found).toEqual(["NPM"]);
    // A chunk in which no pattern can start goes on as it is.
    const clean = enc.encode("nothing here");
    expect((await collect(streamOf([clean]).pipeThrough(scanStream(patterns, () => "abort"))))[0]).toBe(clean);
  });

  it("errors the stream with the given error when onFound returns abort; no byte of the occurrence leaves", async () => {
    // The placeholder arrives in three pieces; it ends exactly at a chunk end, so it is decided
    // only when the next byte shows that no name character follows.
    const chunks = splitAt(enc.encode("safe part; DEFT_SECRET_NPM; never sent"), [14, 20, 26]);
    const passed: string[] = [];
    const refused = new Error("placeholder for an unbound host");
    const stream = streamOf(chunks).pipeThrough(scanStream(patterns, () => "abort", { abortError: () => refused }));
    const err = await (async () => {
      for await (const c of chunksOf(stream)) passed.push(dec.decode(c));
    })().catch((e: unknown) => e);
    expect(err).toBe(refused);
    expect(passed.join("")).toBe("safe part; ");
    const byDefault = await collect(streamOf([enc.encode("DEFT_SECRET_NPM")]).pipeThrough(scanStream(patterns, () => "abort"))).catch((e: unknown) => e);
    expect(byDefault).toBeInstanceOf(StreamAbortedError);
    expect((byDefault as StreamAbortedError).pattern).toBe("NPM");
    const returned = new Error("returned by onFound");
    const byReturn = await collect(streamOf([enc.encode("DEFT_SECRET_NPM")]).pipeThrough(scanStream(patterns, () => returned))).catch((e: unknown) => e);
    expect(byReturn).toBe(returned);
  });

  it("errors the stream with what onFound throws", async () => {
    const thrown = new Error("thrown by onFound");
    const err = await collect(
      streamOf([enc.encode("xx DEFT_SECRET_NPM")]).pipeThrough(
        scanStream(patterns, () => {
          throw thrown;
        }),
      ),
    ).catch((e: unknown) => e);
    expect(err).toBe(thrown);
  });
});

describe("replaceStream on 100 MB", () => {
  const CHUNK = 64 * 1024;
  const TOTAL_CHUNKS = 1600; // 100 MiB (104 857 600 bytes)
  const FILL = enc.encode("the quick brown fox jumps over the lazy dog, again and again... ok\n").subarray(0, 64);
  const FILLER = new Uint8Array(CHUNK).map((_, i) => FILL[i % FILL.length]!);
  const placeholder = pair("DEFT_SECRET_GITHUB", "ghp_0123456789abcdefghijklmnopqrstuvwxyz", "GITHUB", (b) => !isNameByte(b));
  const secret = pair("Zk9-super-secret-value", "[REDACTED:OTHER]", "OTHER");
  const pairs = [placeholder, secret];
  // Where each occurrence starts in the input: the very start, split across chunk boundaries at
  // several offsets, wholly inside a chunk, and ending exactly at the end of the stream.
  const placements: Array<{ at: number; p: ReplacePair }> = [
    { at: 0, p: placeholder },
    { at: 10 * CHUNK - 1, p: placeholder },
    { at: 200 * CHUNK - 9, p: secret },
    { at: 700 * CHUNK - 17, p: placeholder },
    { at: 900 * CHUNK + 1000, p: secret },
    { at: 1200 * CHUNK, p: placeholder },
    { at: TOTAL_CHUNKS * CHUNK - placeholder.from.length, p: placeholder },
  ];

  /** The input, generated lazily: the shared filler chunk except where an occurrence is placed. */
  function input(): ReadableStream<Uint8Array> {
    let i = 0;
    return new ReadableStream<Uint8Array>(
      {
        pull(c) {
          if (i === TOTAL_CHUNKS) return c.close();
          const start = i * CHUNK;
          const touching = placements.filter(({ at, p }) => at < start + CHUNK && at + p.from.length > start);
          if (touching.length === 0) c.enqueue(FILLER);
          else {
            const chunk = FILLER.slice();
            for (const { at, p } of touching) for (let k = 0; k < p.from.length; k++) if (at + k >= start && at + k < start + CHUNK) chunk[at + k - start] = p.from[k]!;
            c.enqueue(chunk);
          }
          i++;
        },
      },
      { highWaterMark: 0 },
    );
  }

  /** The expected output, as pieces: filler runs and replacements. */
  function* expectedPieces(): Generator<Uint8Array> {
    let at = 0;
    const end = TOTAL_CHUNKS * CHUNK;
    for (const { at: next, p } of [...placements, { at: end, p: null }]) {
      while (at < next) {
        const inChunk = at % CHUNK;
        const n = Math.min(CHUNK - inChunk, next - at);
        yield FILLER.subarray(inChunk, inChunk + n);
        at += n;
      }
      if (p) {
        yield p.to;
        at += p.from.length;
      }
    }
  }

  /** Pass the input through once, counting output bytes and matches; prints the rate. */
  async function timedRun(label: string, runPairs: ReplacePair[]): Promise<{ bytes: number; matches: number }> {
    let matches = 0;
    let bytes = 0;
    const started = performance.now();
    for await (const c of chunksOf(input().pipeThrough(replaceStream(runPairs, { onMatch: () => matches++ })))) bytes += c.length;
    const seconds = (performance.now() - started) / 1000;
    const inputBytes = TOTAL_CHUNKS * CHUNK;
    console.log(`replaceStream, ${label}: ${(inputBytes / 1e6).toFixed(0)} MB in ${(seconds * 1000).toFixed(0)} ms = ${(inputBytes / 1e9 / seconds).toFixed(2)} GB/s`);
    return { bytes, matches };
  }

  it("replaces occurrences placed at chunk boundaries, byte-exact, and reports the rate", async () => {
    // Timed runs (the first one includes warming up): the consumer only counts.
    let bytes = 0;
    for (const run of [1, 2, 3]) {
      const r = await timedRun(`2 patterns, run ${run}`, pairs);
      expect(r.matches).toBe(placements.length);
      const growth = placements.reduce((n, { p }) => n + p.to.length - p.from.length, 0);
      expect(r.bytes).toBe(TOTAL_CHUNKS * CHUNK + growth);
      bytes = r.bytes;
    }

    // Checked run: compare every output byte with the expected pieces.
    const expected = expectedPieces();
    let want = expected.next().value as Uint8Array;
    let wantAt = 0;
    let offset = 0;
    for await (const c of chunksOf(input().pipeThrough(replaceStream(pairs)))) {
      for (let i = 0; i < c.length; i++) {
        while (wantAt === want.length) {
          want = expected.next().value as Uint8Array;
          wantAt = 0;
        }
        if (c[i] !== want[wantAt]) throw new Error(`output differs at byte ${offset + i}`);
        wantAt++;
      }
      offset += c.length;
    }
    expect(offset).toBe(bytes);
  });

  it("reports the rate with one pattern", async () => {
    for (const run of [1, 2]) {
      const r = await timedRun(`1 pattern, run ${run}`, [placeholder]);
      expect(r.matches).toBe(5);
      expect(r.bytes).toBe(TOTAL_CHUNKS * CHUNK + 5 * (placeholder.to.length - placeholder.from.length));
    }
  });
});
