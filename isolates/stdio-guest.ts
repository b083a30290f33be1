/**
 * The guest entry for isolates that are processes (Deno subprocess, Bun in bubblewrap): the
 * protocol as one JSON object per line on stdin (host → guest) and stdout (guest → host). A line
 * on stdout that is not a protocol message (the snippet writing to stdout directly) reaches the
 * host as output, never as a call.
 */
import { guestMainSource } from "./guest.ts";

export interface StdioGuestIo {
  /** Lines put before everything else (a runtime's pragma). */
  prologue?: string;
  /** A JavaScript expression for the guest's stdin as a ReadableStream<Uint8Array>. */
  stdin: string;
  /**
   * A JavaScript expression for a function writing a whole Uint8Array to stdout synchronously.
   * Synchronous on purpose: a snippet flooding `console.log` in a loop that never yields then
   * blocks on the pipe, the host reads, counts and stops it at the output limit, instead of the
   * output piling up in the guest until it runs out of memory.
   */
  write: string;
  /**
   * A JavaScript expression for a function reading stdin synchronously into a Uint8Array,
   * returning the byte count (0 at EOF, null when it would block: then the stream takes over). The guest reads its first message (the run)
   * this way right after saying `ready`: setting up the async stdin stream costs several ms of
   * a cold start, and a guest has nothing to do until its run arrives anyway.
   */
  readSync: string;
}

/** The whole guest script: prelude plus a line-delimited JSON transport. */
export function stdioGuestScript(io: StdioGuestIo): string {
  return `${io.prologue ? `${io.prologue}\n` : ""}"use strict";
const __deftWrite = ${io.write};
const __deftEnc = new TextEncoder();
// Host messages after the run are only ever replies to calls, so the async stdin stream (a few
// ms to set up) starts with the first call. Nothing here touches timers: Deno's first
// setTimeout costs ~12 ms, which a snippet that needs timers pays itself.
let __deftHandler = null;
let __deftStreaming = false;
const __deftDec = new TextDecoder();
let __deftBuf = "";
const __deftDrain = () => {
  let nl, n = 0;
  while ((nl = __deftBuf.indexOf("\\n")) >= 0) {
    const line = __deftBuf.slice(0, nl);
    __deftBuf = __deftBuf.slice(nl + 1);
    if (line) { n++; __deftHandler(JSON.parse(line)); }
  }
  return n;
};
const __deftStream = () => {
  if (__deftStreaming) return;
  __deftStreaming = true;
  (async () => {
    for await (const c of ${io.stdin}) {
      __deftBuf += __deftDec.decode(c, { stream: true });
      __deftDrain();
    }
  })();
};
const __deftTransport = {
  send(msg) {
    try {
      __deftWrite(__deftEnc.encode(JSON.stringify(msg) + "\\n"));
    } catch {}
    if (msg.t === "call") __deftStream();
  },
  onMessage(handler) {
    __deftHandler = handler;
    // The first message (the run) is read synchronously, after the prelude has said "ready"
    // (it does right after registering this handler): a cold start sends the run with the
    // spawn, and a warm isolate has nothing to do until its run arrives.
    queueMicrotask(() => {
      const readSync = ${io.readSync};
      const chunk = new Uint8Array(65536);
      while (true) {
        const n = readSync(chunk);
        if (n === 0) return;
        if (n == null) return __deftStream();
        __deftBuf += __deftDec.decode(chunk.subarray(0, n), { stream: true });
        if (__deftDrain()) return;
      }
    });
  },
};
(${guestMainSource()})(__deftTransport);
`;
}

/** Host side: split a guest's stdout into protocol messages and stray output. */
export class LineDecoder {
  #buf = "";
  readonly #dec = new TextDecoder();
  constructor(
    private readonly onMessage: (msg: import("./protocol.ts").GuestMessage) => void,
    private readonly onStray: (text: string) => void,
  ) {}
  push(chunk: Uint8Array): void {
    this.#buf += this.#dec.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = this.#buf.indexOf("\n")) >= 0) {
      const line = this.#buf.slice(0, nl);
      this.#buf = this.#buf.slice(nl + 1);
      this.#line(line);
    }
  }
  /** Bytes buffered without a newline (a guest flooding one endless line). */
  get pending(): number {
    return this.#buf.length;
  }
  #line(line: string): void {
    if (!line) return;
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      return this.onStray(line);
    }
    if (msg && typeof msg === "object" && typeof (msg as { t?: unknown }).t === "string") this.onMessage(msg as never);
    else this.onStray(line);
  }
}
