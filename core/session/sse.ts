/**
 * Server-sent events of the session stream, decoded by the rules the SDK's parser follows
 * (contract §4.1): UTF-8; lines end in LF, CRLF or CR; a blank line ends a message; a leading BOM
 * is dropped; lines starting with ":" are comments; only `event` and `data` are used; several
 * `data` lines join with "\n"; one space after the colon is stripped; a message without an
 * `event` field is dropped; `ping` is a keepalive; `error` carries an error envelope.
 *
 * Why not the SDK's own `Stream` iterator: the connection is still opened by the SDK (auth,
 * headers, retries), but decoding each event through its stack of async generators cost about
 * 0.3x a minimal client's whole round trip per tool call (BENCHMARKS.md). This decoder is
 * synchronous per chunk: one await per network read, not several per event.
 */

export interface SseMessage {
  event: string | null;
  data: string;
}

/** An `event: error` message on the stream: transient, the caller reconnects. */
export class StreamErrorEvent extends Error {
  override name = "StreamErrorEvent";
  constructor(readonly body: unknown) {
    super(`the event stream sent an error: ${typeof body === "string" ? body : JSON.stringify(body)}`);
  }
}

export class SseDecoder {
  readonly #text = new TextDecoder("utf-8");
  #buf = "";
  #event: string | null = null;
  #data: string[] = [];
  #started = false;

  /** Feed bytes; returns the messages completed by them. */
  push(chunk: Uint8Array): SseMessage[] {
    let s = this.#text.decode(chunk, { stream: true });
    if (!this.#started && s.length) {
      this.#started = true;
      if (s.charCodeAt(0) === 0xfeff) s = s.slice(1);
    }
    this.#buf += s;
    return this.#lines(false);
  }

  /** End of stream: a message not ended by a blank line is dropped (as the SDK does). */
  end(): SseMessage[] {
    this.#buf += this.#text.decode();
    return this.#lines(true);
  }

  #lines(final: boolean): SseMessage[] {
    const out: SseMessage[] = [];
    const buf = this.#buf;
    let start = 0;
    for (let i = 0; i < buf.length; i++) {
      const c = buf.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      // A CR at the very end may be the first half of a CRLF still in flight.
      if (c === 13 && i === buf.length - 1 && !final) break;
      this.#line(buf.slice(start, i), out);
      if (c === 13 && buf.charCodeAt(i + 1) === 10) i++;
      start = i + 1;
    }
    this.#buf = buf.slice(start);
    return out;
  }

  #line(line: string, out: SseMessage[]) {
    if (line === "") {
      if (this.#event !== null || this.#data.length) out.push({ event: this.#event, data: this.#data.join("\n") });
      this.#event = null;
      this.#data = [];
      return;
    }
    if (line.charCodeAt(0) === 58 /* : */) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === "event") this.#event = value;
    else if (field === "data") this.#data.push(value);
  }
}

/**
 * Read a session stream to its end, handing each JSON event to `onEvent` synchronously, in order.
 * Pings and messages without an `event` field are skipped, as are messages with empty data;
 * `event: error` and malformed JSON throw (the caller reconnects and the history listing
 * catches up). Resolves when the server closes the stream.
 */
export async function readSessionEvents(
  body: ReadableStream<Uint8Array>,
  onEvent: (event: unknown) => void,
  /** Called for every chunk read, pings included: proof the connection is alive. */
  onBytes?: () => void,
): Promise<void> {
  const reader = body.getReader();
  const decoder = new SseDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      onBytes?.();
      for (const m of done ? decoder.end() : decoder.push(value)) {
        if (m.event === null || m.event === "ping") continue;
        if (m.event === "error") {
          let parsed: unknown = m.data;
          try {
            parsed = JSON.parse(m.data);
          } catch {
            // keep the text
          }
          throw new StreamErrorEvent(parsed);
        }
        if (m.data) onEvent(JSON.parse(m.data));
      }
      if (done) return;
    }
  } finally {
    reader.releaseLock();
  }
}
