/** Small timing helpers shared by the worker and the session runner. */

/** Resolve after `ms`, or reject with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Exponential backoff `base·2^attempt` capped at `cap`, minus up to 25% jitter (the SDK's shape). */
export function backoffMs(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const raw = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt));
  return Math.round(raw * (1 - 0.25 * random()));
}

/** Uniform random integer in [min, max]. */
export function jitterBetween(minMs: number, maxMs: number, random: () => number = Math.random): number {
  return Math.round(minMs + (maxMs - minMs) * random());
}

/**
 * Many AbortControllers that stop together, without a listener per member on a shared signal
 * (Node warns past 10 listeners, and each one is kept until its signal is collected).
 */
export class AbortGroup {
  readonly #members = new Set<AbortController>();
  #reason: unknown;
  #aborted = false;

  get aborted(): boolean {
    return this.#aborted;
  }

  /** A new member; already aborted if the group is. Call {@link release} when done with it. */
  join(): AbortController {
    const ac = new AbortController();
    if (this.#aborted) ac.abort(this.#reason);
    else this.#members.add(ac);
    return ac;
  }

  release(ac: AbortController): void {
    this.#members.delete(ac);
  }

  abort(reason?: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    for (const ac of this.#members) ac.abort(reason);
    this.#members.clear();
  }
}

export function isAbortError(err: unknown): boolean {
  return (
    typeof err === "object" &&
    err !== null &&
    ((err as { name?: string }).name === "AbortError" ||
      (err as { name?: string }).name === "APIUserAbortError" ||
      (err as { name?: string }).name === "TimeoutError")
  );
}
