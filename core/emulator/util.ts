// Small runtime-neutral helpers: ids, tokens, timestamps, base64url, sleeping.
// Web APIs only (crypto.getRandomValues, btoa, TextEncoder, setTimeout).

const ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/** Random string over a 58-letter alphabet (no look-alike letters). */
export function randomString(length: number): string {
  const bytes = new Uint8Array(length);
  crypto.getRandomValues(bytes);
  let out = "";
  for (const b of bytes) out += ALPHABET[b % ALPHABET.length];
  return out;
}

/** An id such as `sevt_01Ab...` with the given prefix. */
export function newId(prefix: string): string {
  return `${prefix}_${randomString(24)}`;
}

/** Bytes to base64url without padding. */
export function base64UrlEncode(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A fresh opaque secret value, e.g. `sk-ant-req-<43 chars>`. */
export function newSecret(prefix: string): string {
  const bytes = new Uint8Array(32);
  crypto.getRandomValues(bytes);
  return prefix + base64UrlEncode(bytes);
}

let lastMicros = 0;

/**
 * RFC 3339 UTC timestamp with microsecond precision that strictly increases
 * across calls in this process (so two stored heartbeats never compare equal).
 */
export function nowStamp(): string {
  const micros = Math.max(Date.now() * 1000, lastMicros + 1);
  lastMicros = micros;
  const ms = Math.floor(micros / 1000);
  const base = new Date(ms).toISOString(); // 2025-01-01T00:00:00.123Z
  const extra = String(micros % 1000).padStart(3, "0");
  return `${base.slice(0, -1)}${extra}Z`;
}

/** Parse an RFC 3339 string to epoch milliseconds (NaN when invalid). */
export function parseStamp(s: string): number {
  return Date.parse(s);
}

/** Resolve after `ms`, or early (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** True for a plain JSON object (not null, not an array). */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
