/**
 * Streaming byte search and replace, for request bodies (credential placeholders in) and
 * response bodies (secrets out). Bodies are never buffered: each chunk is scanned as it
 * arrives and everything that cannot be the start of a match is passed on at once.
 *
 * Matching rules (the same whatever the chunking, so a sender cannot dodge a pattern by
 * splitting it across writes):
 *   - leftmost, then longest: at the earliest position where any pattern occurs, the longest
 *     pattern occurring there wins; scanning resumes after the match, so matches never overlap;
 *   - equal patterns: the first one listed wins;
 *   - a pattern with `followedBy` counts only when the byte after it passes that test, or when
 *     the stream ends right after it (a token boundary: `DEFT_SECRET_GITHUB` must not match
 *     inside `DEFT_SECRET_GITHUB_APP`).
 *
 * Carry: when a chunk ends with the start of a possible match, those bytes (at most the
 * longest pattern's length − 1, plus one for a pattern with `followedBy`) are held back until
 * the next chunk decides. A chunk in which no pattern can start is passed on as it is
 * (zero-copy); a chunk with matches is passed on as views of itself around the replacements.
 *
 * Runtime-neutral: Web streams only.
 */

/** One pattern to find and the bytes to write in its place. */
export interface ReplacePair {
  /** The bytes to find; must not be empty. */
  from: Uint8Array;
  /** The bytes written instead. */
  to: Uint8Array;
  /** Reported to `onMatch` for each occurrence replaced. */
  name: string;
  /** When set, an occurrence counts only if the byte after it passes this test (or the stream ends there). */
  followedBy?: (byte: number) => boolean;
}

/** One pattern for `scanStream`. */
export interface ScanPattern {
  /** The bytes to find; must not be empty. */
  pattern: Uint8Array;
  /** Reported to `onFound`. */
  name: string;
  /** As for `ReplacePair.followedBy`. */
  followedBy?: (byte: number) => boolean;
}

/** A cap on the bytes a stream passes on. */
export interface StreamLimitOptions {
  /** The most bytes passed on; one more errors the stream with a `StreamLimitError` (no partial chunk is sent). */
  maxBytes?: number;
  /** Called once, just before the stream errors because of `maxBytes`. */
  onLimit?(): void;
}

/** Options of `replaceStream`. */
export interface ReplaceOptions extends StreamLimitOptions {
  /** Called once per occurrence replaced, as it is replaced, with the pair's name. */
  onMatch?(name: string): void;
}

/** Options of `scanStream`. */
export interface ScanOptions extends StreamLimitOptions {
  /** The error the stream fails with when `onFound` returns "abort" (default: a `StreamAbortedError`). */
  abortError?(name: string): unknown;
}

/** What `scanStream`'s `onFound` decides: carry on (nothing), stop ("abort"), or stop with this error. */
export type ScanVerdict = void | undefined | "abort" | Error;

/** The stream passed more than `maxBytes` on. */
export class StreamLimitError extends Error {
  readonly code = "stream_limit";
  constructor(readonly limit: number) {
    super(`the body is larger than the limit of ${limit} bytes`);
    this.name = "StreamLimitError";
  }
}

/** `scanStream`'s `onFound` asked to stop the stream because of a pattern. */
export class StreamAbortedError extends Error {
  readonly code = "stream_aborted";
  constructor(readonly pattern: string) {
    super(`the body was refused: it carries ${pattern}`);
    this.name = "StreamAbortedError";
  }
}

/**
 * A transform that replaces every occurrence of each `from` with its `to` (rules in the file
 * comment), calling `onMatch` per occurrence. With no pairs it passes bytes through, still
 * applying `maxBytes`.
 */
export function replaceStream(pairs: ReplacePair[], opts: ReplaceOptions = {}): TransformStream<Uint8Array, Uint8Array> {
  const searcher = new Searcher(pairs.map((p) => ({ bytes: p.from, to: p.to, name: p.name, followedBy: p.followedBy })));
  return searchTransform(searcher, (pattern) => opts.onMatch?.(pattern.name), opts);
}

/**
 * A transform that passes the bytes on unchanged and calls `onFound` for each occurrence of a
 * pattern (same matching rules and carry as `replaceStream`: the bytes of a possible occurrence
 * are held back until it is decided, so no byte of an occurrence is passed on before `onFound`
 * has ruled on it). The stream errors when `onFound` throws (with what it threw), returns an
 * Error (with that error), or returns "abort" (with `opts.abortError(name)`, by default a
 * `StreamAbortedError`).
 */
export function scanStream(patterns: ScanPattern[], onFound: (name: string) => ScanVerdict, opts: ScanOptions = {}): TransformStream<Uint8Array, Uint8Array> {
  // Each occurrence is "replaced" by itself, after onFound has let it through.
  const searcher = new Searcher(patterns.map((p) => ({ bytes: p.pattern, to: p.pattern, name: p.name, followedBy: p.followedBy })));
  return searchTransform(
    searcher,
    (pattern) => {
      const verdict = onFound(pattern.name);
      if (verdict instanceof Error) throw verdict;
      if (verdict === "abort") throw opts.abortError ? opts.abortError(pattern.name) : new StreamAbortedError(pattern.name);
    },
    opts,
  );
}

/** The transform around a searcher: bytes and replacements enqueued in order, `onMatch` told first, `maxBytes` applied. */
function searchTransform(searcher: Searcher, onMatch: (pattern: Pattern) => void, opts: StreamLimitOptions): TransformStream<Uint8Array, Uint8Array> {
  const limit = new OutputLimit(opts);
  let out!: TransformStreamDefaultController<Uint8Array>;
  const sink: SearchSink = {
    bytes(bytes) {
      limit.add(bytes.length);
      out.enqueue(bytes);
    },
    match(pattern) {
      onMatch(pattern);
      limit.add(pattern.to.length);
      // A copy per occurrence: a consumer may keep or transfer what it reads.
      if (pattern.to.length > 0) out.enqueue(pattern.to.slice());
    },
  };
  return new TransformStream<Uint8Array, Uint8Array>({
    start(controller) {
      out = controller;
    },
    transform(chunk) {
      searcher.push(chunk, sink);
    },
    flush() {
      searcher.end(sink);
    },
  });
}

// ---------------------------------------------------------------------------------------------

const EMPTY = new Uint8Array(0);

/** Above this many distinct first bytes, one table-driven loop beats one `indexOf` pass per byte. */
const MAX_INDEXOF_FIRST_BYTES = 2;

/** From this shortest-pattern length on, Horspool skipping reads fewer bytes than `indexOf`. */
const MIN_SKIP_LENGTH = 8;

interface Pattern {
  bytes: Uint8Array;
  to: Uint8Array;
  name: string;
  followedBy?: (byte: number) => boolean;
}

/** Where the searcher sends its output: unmatched bytes (views, in order) and matches. */
interface SearchSink {
  bytes(bytes: Uint8Array): void;
  match(pattern: Pattern): void;
}

/** Counts bytes passed on and throws `StreamLimitError` past `maxBytes`. */
class OutputLimit {
  #total = 0;
  constructor(private readonly opts: StreamLimitOptions) {}
  add(n: number): void {
    const max = this.opts.maxBytes;
    if (max === undefined) return;
    this.#total += n;
    if (this.#total > max) {
      this.opts.onLimit?.();
      throw new StreamLimitError(max);
    }
  }
}

/** What `patternAt` found at one position. */
const NEED_MORE = "need-more";
type AtResult = Pattern | typeof NEED_MORE | null;

/** A pattern occurrence (`pattern` set) or the start of a possible one cut off by the buffer's end. */
interface Hit {
  start: number;
  pattern: Pattern | typeof NEED_MORE;
}

/** The patterns, indexed by first byte; and the stateful carry between chunks. */
class Searcher {
  /** Patterns by first byte, longest first (stable: equal lengths keep the caller's order). */
  readonly #byFirstByte: Array<Pattern[] | undefined> = new Array(256);
  readonly #index: PatternIndex;
  /** The most bytes ever carried: longest pattern (plus one for a `followedBy` byte) − 1. */
  readonly #window: number;
  /** Bytes held back from the previous chunk: the start of a possible occurrence. */
  #carry: Uint8Array = EMPTY;

  constructor(patterns: Pattern[]) {
    let longest = 0;
    for (const p of patterns) {
      if (p.bytes.length === 0) throw new TypeError(`pattern ${p.name} is empty`);
      const first = p.bytes[0]!;
      let list = this.#byFirstByte[first];
      if (!list) list = this.#byFirstByte[first] = [];
      list.push(p);
      longest = Math.max(longest, p.bytes.length + (p.followedBy ? 1 : 0));
    }
    for (const list of this.#byFirstByte) list?.sort((a, b) => b.bytes.length - a.bytes.length);
    this.#window = Math.max(0, longest - 1);
    this.#index = new PatternIndex(patterns.map((p) => p.bytes));
  }

  /** Scan one chunk: send what is decided to `sink`, keep the undecided tail. */
  push(chunk: Uint8Array, sink: SearchSink): void {
    if (chunk.length === 0) return;
    if (this.#carry.length === 0) {
      this.#scan(chunk, 0, false, sink);
      return;
    }
    const carry = this.#carry;
    this.#carry = EMPTY;
    if (chunk.length < this.#window) {
      // A short chunk: join it to the carry (both small) and scan the two as one buffer.
      this.#scan(concat(carry, chunk), 0, false, sink);
      return;
    }
    // Decide the occurrences that start in the carry on a small joint buffer (the carry and
    // the chunk's first `window` bytes: enough to finish any of them), then scan the chunk
    // itself from where the last of them ended, without copying it.
    const joint = concat(carry, chunk.subarray(0, this.#window));
    const resume = this.#scanCarry(joint, carry.length, sink);
    this.#scan(chunk, Math.max(0, resume - carry.length), false, sink);
  }

  /** The stream ended: decide the carry with no more bytes to come. */
  end(sink: SearchSink): void {
    const carry = this.#carry;
    this.#carry = EMPTY;
    if (carry.length > 0) this.#scan(carry, 0, true, sink);
  }

  /**
   * Send `buf[from..]` to the sink with its occurrences replaced. Unless `final`, a possible
   * occurrence cut off by the end of `buf` becomes the carry.
   */
  #scan(buf: Uint8Array, from: number, final: boolean, sink: SearchSink): void {
    const cursor = this.#index.cursor(buf);
    let pos = from;
    for (;;) {
      const hit = this.#next(buf, cursor, pos, buf.length, final);
      if (hit === null) break;
      if (hit.pattern === NEED_MORE) {
        if (hit.start > pos) sink.bytes(buf.subarray(pos, hit.start));
        this.#carry = buf.slice(hit.start);
        return;
      }
      if (hit.start > pos) sink.bytes(buf.subarray(pos, hit.start));
      sink.match(hit.pattern);
      pos = hit.start + hit.pattern.bytes.length;
    }
    if (pos === 0) sink.bytes(buf);
    else if (pos < buf.length) sink.bytes(buf.subarray(pos));
  }

  /**
   * Send the carry part of `joint` (its first `carryLength` bytes) to the sink, replacing the
   * occurrences that start there; returns where scanning resumes in `joint` (past the carry,
   * or inside the chunk bytes when the last occurrence ran into them).
   */
  #scanCarry(joint: Uint8Array, carryLength: number, sink: SearchSink): number {
    const cursor = this.#index.cursor(joint);
    let pos = 0;
    for (;;) {
      const hit = this.#next(joint, cursor, pos, carryLength, false);
      if (hit === null) break;
      // Every occurrence starting in the carry ends within `joint` (that is what the window
      // guarantees), so it is always decided here.
      if (hit.pattern === NEED_MORE) throw new Error("internal: an occurrence in the carry was left undecided");
      if (hit.start > pos) sink.bytes(joint.subarray(pos, hit.start));
      sink.match(hit.pattern);
      pos = hit.start + hit.pattern.bytes.length;
    }
    if (pos < carryLength) {
      sink.bytes(joint.subarray(pos, carryLength));
      return carryLength;
    }
    return pos;
  }

  /** The leftmost hit starting in [from, limit), or null. */
  #next(buf: Uint8Array, cursor: CandidateCursor, from: number, limit: number, final: boolean): Hit | null {
    let pos = from;
    for (;;) {
      const candidate = cursor.next(pos, limit);
      if (candidate < 0) return null;
      const found = this.#patternAt(buf, candidate, final);
      if (found !== null) return { start: candidate, pattern: found };
      pos = candidate + 1;
    }
  }

  /**
   * The longest pattern occurring at `start`; NEED_MORE when a pattern at least as long may
   * occur there but `buf` ends too soon to tell (never when `final`); null when none does.
   */
  #patternAt(buf: Uint8Array, start: number, final: boolean): AtResult {
    const candidates = this.#byFirstByte[buf[start]!];
    if (!candidates) return null;
    const available = buf.length - start;
    for (const p of candidates) {
      const length = p.bytes.length;
      const compared = Math.min(length, available);
      let i = 1;
      while (i < compared && buf[start + i] === p.bytes[i]) i++;
      if (i < compared) continue; // a byte differs
      if (length > available) {
        if (final) continue;
        return NEED_MORE;
      }
      if (p.followedBy) {
        if (length === available) {
          if (final) return p;
          return NEED_MORE; // the deciding byte has not arrived yet
        }
        if (!p.followedBy(buf[start + length]!)) continue;
      }
      return p;
    }
    return null;
  }
}

/**
 * How `CandidateCursor` looks for candidates, chosen once per stream by `PatternIndex`:
 *   none     no patterns: no candidates;
 *   skip     every pattern at least MIN_SKIP_LENGTH long: Horspool skipping on the shortest length;
 *   indexOf  one or two distinct first bytes: the native `indexOf` per first byte;
 *   table    otherwise: one walk over the buffer with a first-byte table.
 */
type Strategy = "none" | "skip" | "indexOf" | "table";

/** What the cursors need to know about the patterns, computed once per stream. */
class PatternIndex {
  readonly firstBytes: number[] = [];
  readonly isFirstByte = new Uint8Array(256);
  /** Length of the shortest pattern: the Horspool window. */
  readonly shortest: number;
  /** Horspool: how far the window may move when its last byte is b (0: b ends some pattern's window; check here). */
  readonly shift = new Int32Array(256);
  readonly strategy: Strategy;

  constructor(patterns: Uint8Array[]) {
    for (const p of patterns) {
      const first = p[0]!;
      if (this.isFirstByte[first] === 0) {
        this.isFirstByte[first] = 1;
        this.firstBytes.push(first);
      }
    }
    this.shortest = patterns.length === 0 ? 0 : Math.min(...patterns.map((p) => p.length));
    const m = this.shortest;
    this.shift.fill(m);
    for (const p of patterns) {
      for (let i = 0; i < m - 1; i++) this.shift[p[i]!] = Math.min(this.shift[p[i]!]!, m - 1 - i);
    }
    for (const p of patterns) this.shift[p[m - 1]!] = 0;
    if (patterns.length === 0) this.strategy = "none";
    else if (m >= MIN_SKIP_LENGTH) this.strategy = "skip";
    else if (this.firstBytes.length <= MAX_INDEXOF_FIRST_BYTES) this.strategy = "indexOf";
    else this.strategy = "table";
  }

  cursor(buf: Uint8Array): CandidateCursor {
    return new CandidateCursor(this, buf);
  }
}

/**
 * Finds, in one buffer, positions where a pattern may start: never skips a real start (an
 * occurrence, or one cut off by the buffer's end); may return positions where none is, which
 * `patternAt` then rules out. One class with a switch rather than one class per strategy, so
 * that the hot call sites stay monomorphic.
 */
class CandidateCursor {
  /** IndexOf: per first byte, its next known position; -1 before the first look, Infinity when there is none left. */
  readonly #nextAt: number[];

  constructor(
    private readonly index: PatternIndex,
    private readonly buf: Uint8Array,
  ) {
    this.#nextAt = index.strategy === "indexOf" ? index.firstBytes.map(() => -1) : [];
  }

  /** The first candidate position in [from, limit), or -1. */
  next(from: number, limit: number): number {
    switch (this.index.strategy) {
      case "none":
        return -1;
      case "skip":
        return this.#skip(from, limit);
      case "indexOf":
        return this.#indexOf(from, limit);
      case "table":
        return this.#table(from, Math.min(limit, this.buf.length));
    }
  }

  /**
   * Horspool skipping. A window of the shortest pattern length sits at `p`; if its last byte
   * ends the first `shortest` bytes of some pattern, `p` is a candidate; otherwise no pattern
   * can start before `p + shift[last byte]` (it would have to hold that byte earlier in its
   * window, and the shift is the least distance at which any pattern does). Where no whole
   * window fits, near the end of the buffer, first bytes decide (occurrences cut off by the end).
   */
  #skip(from: number, limit: number): number {
    const { buf } = this;
    const { shift, shortest } = this.index;
    const lastWindowStart = buf.length - shortest;
    let p = from;
    while (p <= lastWindowStart && p < limit) {
      const s = shift[buf[p + shortest - 1]!]!;
      if (s === 0) return p;
      p += s;
    }
    return this.#table(p, Math.min(limit, buf.length));
  }

  /** Native `indexOf` per first byte, remembering each byte's next position: a buffer is read at most once per first byte. */
  #indexOf(from: number, limit: number): number {
    const { firstBytes } = this.index;
    let best = Infinity;
    for (let k = 0; k < firstBytes.length; k++) {
      let at = this.#nextAt[k]!;
      if (at < from) {
        const found = this.buf.indexOf(firstBytes[k]!, from);
        at = found < 0 ? Infinity : found;
        this.#nextAt[k] = at;
      }
      if (at < best) best = at;
    }
    return best < limit ? best : -1;
  }

  /** Each byte in [from, end) against the first-byte table. */
  #table(from: number, end: number): number {
    const { buf } = this;
    const table = this.index.isFirstByte;
    for (let i = from; i < end; i++) if (table[buf[i]!] === 1) return i;
    return -1;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
