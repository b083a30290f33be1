/**
 * The one request on every tool call's path: POST /v1/sessions/{id}/events with results.
 *
 * The SDK builds the request once per session (URL, auth, `anthropic-version`, beta and client
 * headers, exactly as its own methods send them); each post reuses that template with a new
 * body through the SDK's configured `fetch`. Going through the SDK's full request machinery for
 * every post cost about 0.3x a minimal client's whole round trip per call (BENCHMARKS.md);
 * retries and their window are the session runner's (within the lease TTL), so nothing of the
 * SDK's per-request work is needed here. Errors carry `status` like the SDK's, and honour
 * `x-should-retry` as the SDK does.
 */
import type Anthropic from "@anthropic-ai/sdk";
import type { CustomToolResultParams, ToolResultParams } from "../contract/mod.ts";

export class ResultPostError extends Error {
  override name = "ResultPostError";
  constructor(
    readonly status: number,
    readonly body: string,
    /** From `x-should-retry`, when the server said. */
    readonly shouldRetry: boolean | undefined,
  ) {
    super(`posting results answered ${status}: ${body.slice(0, 300)}`);
  }
}

type Template = { url: string; headers: Headers };

/** A result post that has not been answered in this long is abandoned and retried. */
export const POST_TIMEOUT_MS = 30_000;

export class ResultPoster {
  #template: Promise<Template> | undefined;

  constructor(
    private readonly client: Anthropic,
    private readonly sessionId: string,
    /** Headers that authenticate this work item's calls. */
    private readonly auth: Record<string, string> = {},
    private readonly timeoutMs = POST_TIMEOUT_MS,
  ) {}

  #build(): Promise<Template> {
    return (this.#template ??= this.client
      .buildRequest({
        method: "post",
        path: `/v1/sessions/${encodeURIComponent(this.sessionId)}/events`,
        body: { events: [] },
        headers: { ...this.auth, "anthropic-beta": "managed-agents-2026-04-01" },
      } as Parameters<Anthropic["buildRequest"]>[0])
      .then(({ url, req }) => {
        const headers = new Headers(req.headers as HeadersInit);
        // The SDK's platform telemetry headers are dropped from this one hot request: every
        // header is serialised here and parsed at the server on each call.
        for (const name of [...headers.keys()]) if (name.startsWith("x-stainless-")) headers.delete(name);
        return { url, headers };
      })
      .catch((err) => {
        this.#template = undefined; // build again next time
        throw err;
      }));
  }

  /** Post once. Resolves when the server accepted; throws {@link ResultPostError} or a network error. */
  async post(events: Array<ToolResultParams | CustomToolResultParams>, signal: AbortSignal): Promise<void> {
    const { url, headers } = await this.#build();
    if (signal.aborted) throw signal.reason;
    const fetchFn = (this.client as unknown as { fetch: typeof fetch }).fetch ?? fetch;
    // A hung post is abandoned at the timeout (the runner retries). No AbortSignal on the
    // request: a long-lived one gathers a listener per request in undici until they are
    // collected (Node warns past 1500), and a fresh one per call costs more than this race.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`posting results timed out after ${this.timeoutMs}ms`)), this.timeoutMs);
    });
    try {
      const res = await Promise.race([fetchFn(url, { method: "POST", headers, body: JSON.stringify({ events }) }), timedOut]);
      if (res.ok) {
        // Read the (small) answer rather than cancel it, without waiting for it: a cancelled
        // body that has not fully arrived costs the connection (a new TCP connect for the next
        // post on node:http, and on undici when the body is still in flight).
        void res.arrayBuffer().catch(() => {});
        return;
      }
      const retry = res.headers.get("x-should-retry");
      throw new ResultPostError(res.status, await res.text().catch(() => ""), retry === "true" ? true : retry === "false" ? false : undefined);
    } finally {
      clearTimeout(timer);
    }
  }
}
