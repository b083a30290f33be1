/**
 * The guest entry for isolates that are processes (Deno subprocess, Bun in bubblewrap): the
 * protocol as one JSON object per line on stdin (host → guest) and stdout (guest → host). A line
 * on stdout that is not a protocol message (the snippet writing to stdout directly) reaches the
 * host as output, never as a call.
 */
import { guestMainSource } from "./guest.ts";

export interface StdioGuestIo {
  /** A JavaScript expression for the guest's stdin as a ReadableStream<Uint8Array>. */
  stdin: string;
  /**
   * A JavaScript expression for a function writing a whole Uint8Array to stdout synchronously.
   * Synchronous on purpose: a snippet flooding `console.log` in a loop that never yields then
   * blocks on the pipe, the host reads, counts and stops it at the output limit, instead of the
   * output piling up in the guest until it runs out of memory.
   */
  write: string;
}

/** The whole guest script: prelude plus a line-delimited JSON transport. */
export function stdioGuestScript(io: StdioGuestIo): string {
  return `"use strict";
var __name = (f) => f; // esbuild's keepNames helper, should the prelude's source carry it
const __deftWrite = ${io.write};
const __deftEnc = new TextEncoder();
const __deftTransport = {
  send(msg) {
    try {
      __deftWrite(__deftEnc.encode(JSON.stringify(msg) + "\\n"));
    } catch {}
  },
  onMessage(handler) {
    (async () => {
      const dec = new TextDecoder();
      let buf = "";
      for await (const chunk of ${io.stdin}) {
        buf += dec.decode(chunk, { stream: true });
        let nl;
        while ((nl = buf.indexOf("\\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line) handler(JSON.parse(line));
        }
      }
    })();
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
