// A `fetch` for Node built on node:http(s), for the worker's API client. undici's fetch (Node's
// global one) holds about twice the memory per open response stream; a worker that keeps one SSE
// stream open per live session pays that on every session (BENCHMARKS.md). Covers what the API
// client uses: any method, string or byte bodies, streamed responses, AbortSignal. Redirects are
// not followed (the Managed Agents API does not redirect; a 3xx comes back as is).
import http from "node:http";
import https from "node:https";

export interface HttpFetchOptions {
  /** Idle keep-alive sockets kept per origin (default 8). Open streams do not count. */
  maxFreeSockets?: number;
}

export function createHttpFetch(opts: HttpFetchOptions = {}): typeof fetch & { close(): void } {
  const agentOpts = { keepAlive: true, maxFreeSockets: opts.maxFreeSockets ?? 8, scheduling: "lifo" as const };
  const agents = { "http:": new http.Agent(agentOpts), "https:": new https.Agent(agentOpts) };

  const httpFetch = async (input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> => {
    if (input instanceof Request) return httpFetch(input.url, { method: input.method, headers: input.headers, body: input.body, signal: input.signal, ...init });
    const url = new URL(String(input));
    const agent = agents[url.protocol as keyof typeof agents];
    if (!agent) throw new TypeError(`fetch: unsupported protocol ${url.protocol}`);
    const signal = init.signal ?? undefined;
    signal?.throwIfAborted();
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((v, k) => (headers[k] = v));
    const body = await bodyBytes(init.body);
    if (body && headers["content-length"] === undefined) headers["content-length"] = String(body.byteLength);

    return new Promise<Response>((resolve, reject) => {
      const req = (url.protocol === "https:" ? https : http).request(url, { method: init.method ?? "GET", headers, agent });
      let response: http.IncomingMessage | undefined;
      // Before the headers the request fails with the abort; after, the body stream does.
      // An abort once the body has been read whole changes nothing (as with undici): the SDK
      // aborts each request's own controller when it is done with it, and destroying the socket
      // then would cost the keep-alive connection, a new TCP connect per request.
      const onAbort = (): void => {
        if (response?.complete) return;
        (response ?? req).destroy(abortError(signal!));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      const done = (): void => signal?.removeEventListener("abort", onAbort);
      req.on("error", (e) => {
        done();
        reject(e.name === "AbortError" ? e : new TypeError("fetch failed", { cause: e }));
      });
      req.on("response", (res) => {
        response = res;
        const h = new Headers();
        for (let i = 0; i < res.rawHeaders.length; i += 2) h.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
        const status = res.statusCode ?? 0;
        const nullBody = req.method === "HEAD" || status === 204 || status === 205 || status === 304;
        res.on("end", done);
        res.on("close", done);
        if (nullBody) res.resume();
        const stream = nullBody ? null : bodyStream(res);
        const out = new Response(stream, { status, statusText: res.statusMessage ?? "", headers: h });
        Object.defineProperty(out, "url", { value: url.href });
        resolve(out);
      });
      req.end(body);
    });
  };
  return Object.assign(httpFetch as typeof fetch, {
    close(): void {
      agents["http:"].destroy();
      agents["https:"].destroy();
    },
  });
}

async function bodyBytes(body: BodyInit | null | undefined): Promise<Uint8Array | undefined> {
  if (body == null) return undefined;
  if (typeof body === "string") return Buffer.from(body);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  return new Uint8Array(await new Response(body).arrayBuffer());
}

/** The error an aborted request fails with: the signal's reason when it is an Error, else an AbortError. */
export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new DOMException("This operation was aborted", "AbortError");
}

/**
 * The response body as a web stream, with backpressure (the socket is paused while the reader is
 * behind). Cancelling a small body (arrived, or declared at most DRAIN_ON_CANCEL_BYTES) drains
 * it, so the connection goes back to the pool: the result poster cancels the answer to each POST
 * unread, and destroying the socket there (what `Readable.toWeb` does) cost a TCP connect per
 * posted result.
 */
const DRAIN_ON_CANCEL_BYTES = 64 * 1024;

export function bodyStream(res: http.IncomingMessage): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      start(c) {
        res.on("data", (chunk: Buffer) => {
          c.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if ((c.desiredSize ?? 0) <= 0) res.pause();
        });
        res.once("end", () => c.close());
        // Destroyed (an abort, the connection lost) before the end: the reason, as fetch gives it.
        res.once("close", () => {
          if (!res.complete) c.error(res.errored ?? new TypeError("terminated"));
        });
      },
      pull() {
        res.resume();
      },
      cancel() {
        // A small body (arrived, or declared small) is drained; anything else costs the socket.
        const declared = Number(res.headers["content-length"] ?? NaN);
        if (res.complete || declared <= DRAIN_ON_CANCEL_BYTES) res.resume();
        else res.destroy();
      },
    },
    { highWaterMark: 64 * 1024, size: (chunk) => chunk.byteLength },
  );
}
