// Cursor pages: `next_page` is an opaque token naming the last item returned.
import { badRequest } from "./errors.ts";
import { base64UrlEncode } from "./util.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeCursor(id: string): string {
  return base64UrlEncode(enc.encode(`after:${id}`));
}

export function decodeCursor(page: string): string {
  try {
    const b64 = page.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    const text = dec.decode(Uint8Array.from(bin, (ch) => ch.charCodeAt(0)));
    if (!text.startsWith("after:")) throw new Error("bad cursor");
    return text.slice("after:".length);
  } catch {
    throw badRequest(`invalid page cursor ${JSON.stringify(page)}`);
  }
}

export function parseLimit(raw: string | undefined, def: number, max: number): number {
  if (raw === undefined || raw === "") return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) throw badRequest(`limit must be an integer between 1 and ${max}`);
  return n;
}

export interface Page<T> {
  data: T[];
  next_page: string | null;
  prev_page: string | null;
}

/** Slice `items` (already ordered) after the cursor's item. */
export function paginate<T>(items: T[], idOf: (t: T) => string, limit: number, page: string | undefined): Page<T> {
  let start = 0;
  if (page) {
    const after = decodeCursor(page);
    if (after !== "__start__") {
      const i = items.findIndex((t) => idOf(t) === after);
      if (i < 0) throw badRequest("page cursor no longer valid");
      start = i + 1;
    }
  }
  const data = items.slice(start, start + limit);
  const more = start + limit < items.length;
  const last = data[data.length - 1];
  const before = items[start - limit - 1];
  return {
    data,
    next_page: more && last !== undefined ? encodeCursor(idOf(last)) : null,
    prev_page: start === 0 ? null : before !== undefined ? encodeCursor(idOf(before)) : encodeCursor("__start__"),
  };
}
