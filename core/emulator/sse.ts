// A Server-Sent Events response built on a plain ReadableStream, so it works
// unchanged on the Node, Deno and Bun servers.
import type { SessionEvent } from "./types.ts";

export interface SseOptions {
  pingIntervalMs: number;
  /** Close the stream after this many event messages (fault injection). */
  dropAfterEvents?: number;
  /** Aborts when the client goes away. */
  signal?: AbortSignal;
  /** Register the live sink; returns the unsubscribe function. */
  attach(sink: { send(ev: SessionEvent): void; close(): void }): () => void;
  onOpen?(): void;
  /** Called once when the stream ends for any reason; `dropped` = closed by the fault. */
  onClose?(dropped: boolean): void;
}

const encoder = new TextEncoder();

/** One SSE message: `event: <name>\ndata: <json>\n\n`. */
export function sseFrame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export function sseResponse(opts: SseOptions): Response {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let ping: ReturnType<typeof setInterval> | undefined;
  let detach: (() => void) | undefined;
  let ended = false;
  let written = 0;

  const end = (dropped: boolean, closeController: boolean): void => {
    if (ended) return;
    ended = true;
    if (ping !== undefined) clearInterval(ping);
    detach?.();
    opts.signal?.removeEventListener("abort", onAbort);
    if (closeController) {
      try {
        controller.close();
      } catch {
        // already closed or errored
      }
    }
    opts.onClose?.(dropped);
  };
  const write = (text: string): void => {
    if (ended) return;
    try {
      controller.enqueue(encoder.encode(text));
    } catch {
      end(false, false);
    }
  };
  const onAbort = (): void => end(false, true);

  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      // A comment first, so every runtime sends the headers at once.
      write(": stream open\n\n");
      opts.onOpen?.();
      if (opts.dropAfterEvents !== undefined && opts.dropAfterEvents <= 0) {
        end(true, true);
        return;
      }
      detach = opts.attach({
        send(ev) {
          if (ended) return;
          write(sseFrame(ev.type, ev));
          written++;
          if (opts.dropAfterEvents !== undefined && written >= opts.dropAfterEvents) end(true, true);
        },
        close() {
          end(false, true);
        },
      });
      ping = setInterval(() => write(sseFrame("ping", { type: "ping" })), opts.pingIntervalMs);
      if (opts.signal?.aborted) onAbort();
      else opts.signal?.addEventListener("abort", onAbort, { once: true });
    },
    cancel() {
      end(false, false);
    },
  });

  return new Response(body, {
    status: 200,
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      "x-accel-buffering": "no",
    },
  });
}
