/**
 * Credentials at the egress gateway: sandboxes only ever hold placeholders
 * (`DEFT_SECRET_<NAME>`); on the way out, for a destination a credential is bound to, the
 * gateway swaps the real value in (headers, query, body); on the way back, any echo of a secret
 * is redacted before the sandbox sees it.
 *
 * This module does the swapping, the redaction and the reading of secret values; which
 * credentials a request may carry is the policy's decision (core/policy) and the gateway's.
 *
 * Placeholder names follow the policy schema: `[A-Z][A-Z0-9_]*`, longest match, so
 * `DEFT_SECRET_GITHUB_APP` names GITHUB_APP and never GITHUB. The body replacer keeps the same
 * rule (an occurrence counts only when no name character follows it).
 *
 * Runtime-neutral: Web APIs only (streams, `DecompressionStream`, `TextEncoder`, `btoa`).
 */
import type { Credential, SecretRef } from "../core/policy/schema.ts";
import { type ReplacePair, replaceStream, type ScanPattern } from "./stream-replace.ts";

/** What every placeholder starts with. */
export const PLACEHOLDER_PREFIX = "DEFT_SECRET_";

/** The placeholder a sandbox sees for credential `name`. */
export function placeholderOf(name: string): string {
  return PLACEHOLDER_PREFIX + name;
}

/** A placeholder and its name (group 1), longest name. Used with replace/matchAll only (they reset lastIndex). */
const PLACEHOLDER_RE = /DEFT_SECRET_([A-Z][A-Z0-9_]*)/g;

/** True for the bytes of a credential name (A-Z, 0-9, _): a placeholder followed by one is a longer name. */
function isNameByte(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39) || b === 0x5f;
}

/**
 * The `scanStream` pattern for credential `name`'s placeholder, with the name boundary: it does
 * not fire inside a longer placeholder (`DEFT_SECRET_GITHUB` inside `DEFT_SECRET_GITHUB_APP`).
 */
export function placeholderScanPattern(name: string): ScanPattern {
  return { name, pattern: new TextEncoder().encode(placeholderOf(name)), followedBy: (b) => !isNameByte(b) };
}

/** Credential names whose placeholder appears in `text`, each once, in order of first appearance. */
export function findPlaceholders(text: string): string[] {
  const names = new Set<string>();
  for (const m of text.matchAll(PLACEHOLDER_RE)) names.add(m[1]!);
  return [...names];
}

/**
 * Credential names whose placeholder appears in the request's header values or its URL query,
 * looked for both in the raw query and in the query decoded (so `DEFT%5FSECRET%5FX` counts).
 * The body is not read here: it is scanned as it streams.
 */
export function placeholdersInRequest(req: Request): string[] {
  const names = new Set<string>();
  for (const [, value] of req.headers) for (const n of findPlaceholders(value)) names.add(n);
  const search = new URL(req.url).search;
  if (search) {
    for (const n of findPlaceholders(search)) names.add(n);
    for (const [key, value] of new URLSearchParams(search)) for (const n of [...findPlaceholders(key), ...findPlaceholders(value)]) names.add(n);
  }
  return [...names];
}

// ---------------------------------------------------------------------------------------------
// Secret values

/** Resolves a credential's real value. Read by the host only, never by a sandbox. */
export interface SecretSource {
  /** The value `ref` points to; rejects with a `SecretUnavailableError` naming `name` (never a value). */
  get(ref: SecretRef, name: string): Promise<string>;
}

/** Where `createSecretSource` reads from. */
export interface SecretSourceOptions {
  /** Environment variables (`{ env: "GH_TOKEN" }`). */
  env: Record<string, string | undefined>;
  /** Reads a secret file (`{ file: "/run/secrets/gh" }`). */
  readTextFile(path: string): Promise<string>;
  /** Named resolvers (`{ resolver: "vault", key: "gh" }`): a vault, a KMS, a secrets manager. */
  resolvers?: Record<string, (key?: string) => Promise<string>>;
  /** How long a value is reused before it is read again; 0 reads every time (default 60 000). */
  ttlMs?: number;
  /** The clock, in ms (tests). */
  now?: () => number;
}

/** A credential's value could not be had: unset, empty, unreadable, or its resolver failed. */
export class SecretUnavailableError extends Error {
  readonly code = "secret_unavailable";
  constructor(
    /** The credential's name. */
    readonly credential: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "SecretUnavailableError";
  }
}

/** How long `createSecretSource` reuses a value by default. */
export const DEFAULT_SECRET_TTL_MS = 60_000;

/** Why a read failed, without the credential's name (one read may serve several credentials). */
class ReadFailure extends Error {}

/**
 * A `SecretSource` over environment variables, files (one trailing newline trimmed) and named
 * resolvers. A value is cached per reference for `ttlMs`, and concurrent reads of one reference
 * share one read; failures are not cached. An unset or empty value is an error.
 */
export function createSecretSource(opts: SecretSourceOptions): SecretSource {
  const ttlMs = opts.ttlMs ?? DEFAULT_SECRET_TTL_MS;
  const now = opts.now ?? (() => Date.now());
  const cache = new Map<string, { value: Promise<string>; expires: number }>();

  async function read(ref: SecretRef): Promise<string> {
    if ("env" in ref) {
      const value = opts.env[ref.env];
      if (value === undefined) throw new ReadFailure(`environment variable ${ref.env} is not set`);
      if (value === "") throw new ReadFailure(`environment variable ${ref.env} is empty`);
      return value;
    }
    if ("file" in ref) {
      let text: string;
      try {
        text = await opts.readTextFile(ref.file);
      } catch (e) {
        throw new ReadFailure(`cannot read secret file ${ref.file}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
      const value = text.endsWith("\r\n") ? text.slice(0, -2) : text.endsWith("\n") ? text.slice(0, -1) : text;
      if (value === "") throw new ReadFailure(`secret file ${ref.file} is empty`);
      return value;
    }
    const resolver = opts.resolvers?.[ref.resolver];
    const what = `resolver "${ref.resolver}"${ref.key === undefined ? "" : ` (key "${ref.key}")`}`;
    if (!resolver) throw new ReadFailure(`no secret resolver named "${ref.resolver}" is configured`);
    let value: unknown;
    try {
      value = await resolver(ref.key);
    } catch (e) {
      throw new ReadFailure(`${what} failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    if (typeof value !== "string") throw new ReadFailure(`${what} returned ${value === null ? "null" : typeof value}, not a string`);
    if (value === "") throw new ReadFailure(`${what} returned an empty value`);
    return value;
  }

  return {
    async get(ref, name) {
      const key = JSON.stringify("env" in ref ? ["env", ref.env] : "file" in ref ? ["file", ref.file] : ["resolver", ref.resolver, ref.key ?? null]);
      const t = now();
      let entry = cache.get(key);
      if (!entry || entry.expires <= t) {
        const value = read(ref);
        const fresh = { value, expires: t + ttlMs };
        entry = fresh;
        if (ttlMs > 0) cache.set(key, fresh);
        // A failure is not kept: the next get reads again.
        value.catch(() => {
          if (cache.get(key) === fresh) cache.delete(key);
        });
      }
      try {
        return await entry.value;
      } catch (e) {
        const why = e instanceof ReadFailure ? e.message : `reading its secret failed: ${e instanceof Error ? e.message : String(e)}`;
        throw new SecretUnavailableError(name, `credential ${name}: ${why}`, { cause: e instanceof ReadFailure ? e.cause : e });
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Injection

/** A credential and its real value, bound to the request's destination (the caller checked). */
export interface CredentialValue {
  credential: Credential;
  value: string;
}

/** `injectCredentials`' answer. */
export interface InjectedRequest {
  /** The request to send upstream. */
  request: Request;
  /**
   * Names of the credentials actually injected. Header and query injections are in it at once;
   * body injections are added as the body streams, so read it once the body has been sent.
   */
  injected: Set<string>;
}

/** A credential's value cannot go where its placeholder is (a header value with CR, LF, NUL or non-Latin-1). */
export class CredentialInjectionError extends Error {
  readonly code = "credential_not_injectable";
  constructor(
    /** The credential's name. */
    readonly credential: string,
    message: string,
  ) {
    super(message);
    this.name = "CredentialInjectionError";
  }
}

/**
 * A new request with the placeholders of `creds` replaced by their values, each only in the
 * places its `in` lists:
 *   - header: in every header value (a value that is not a valid header value throws a
 *     `CredentialInjectionError`);
 *   - query: in the raw query string, the value percent-encoded (`encodeURIComponent`);
 *     a placeholder that is itself percent-encoded in the URL is not replaced;
 *   - body: as the body streams (never buffered); the request then loses its content-length,
 *     since the length changes (it is kept when the body is absent or not rewritten).
 * Placeholders of other credentials, and of these credentials in places their `in` does not
 * list, are left as they are: the gateway decides about them. The new request carries the
 * method, headers, body, redirect mode and signal of `req`, whose body it takes over.
 */
export function injectCredentials(req: Request, creds: CredentialValue[]): InjectedRequest {
  const injected = new Set<string>();
  const valuesIn = (place: "header" | "query" | "body") => new Map(creds.filter((c) => c.credential.in.includes(place)).map((c) => [c.credential.name, c.value]));

  const headers = new Headers(req.headers);
  const headerValues = valuesIn("header");
  if (headerValues.size > 0) {
    for (const [header, value] of req.headers) {
      const replaced = replacePlaceholders(value, headerValues, (v) => v, injected);
      if (replaced === value) continue;
      for (const name of findPlaceholders(value)) {
        const secret = headerValues.get(name);
        if (secret !== undefined && !isHeaderValue(secret)) {
          throw new CredentialInjectionError(name, `credential ${name} cannot be sent in header ${header}: its value holds characters a header value cannot (CR, LF, NUL or beyond Latin-1)`);
        }
      }
      headers.set(header, replaced);
    }
  }

  const url = new URL(req.url);
  const queryValues = valuesIn("query");
  if (queryValues.size > 0 && url.search) {
    url.search = replacePlaceholders(url.search, queryValues, encodeURIComponent, injected);
  }

  let body: ReadableStream<Uint8Array> | null = req.body;
  const bodyValues = valuesIn("body");
  if (body && bodyValues.size > 0) {
    const enc = new TextEncoder();
    const pairs: ReplacePair[] = [...bodyValues].map(([name, value]) => ({
      from: enc.encode(placeholderOf(name)),
      to: enc.encode(value),
      name,
      followedBy: (b) => !isNameByte(b),
    }));
    body = body.pipeThrough(replaceStream(pairs, { onMatch: (name) => injected.add(name) }));
    headers.delete("content-length");
  }

  const init: RequestInit & { duplex?: "half" } = { method: req.method, headers, redirect: req.redirect, signal: req.signal };
  if (body) {
    init.body = body;
    init.duplex = "half";
  }
  return { request: new Request(url, init), injected };
}

/** `text` with each placeholder named in `values` replaced by `encode(value)`; names replaced go into `injected`. */
function replacePlaceholders(text: string, values: Map<string, string>, encode: (value: string) => string, injected: Set<string>): string {
  return text.replace(PLACEHOLDER_RE, (whole, name: string) => {
    const value = values.get(name);
    if (value === undefined) return whole;
    injected.add(name);
    return encode(value);
  });
}

/** A valid HTTP header value: Latin-1, no CR, LF or NUL. */
function isHeaderValue(value: string): boolean {
  return !/[\0\r\n]|[^\x00-\xff]/.test(value);
}

// ---------------------------------------------------------------------------------------------
// Redaction

/** A secret to redact, by credential name. */
export interface NamedSecret {
  name: string;
  value: string;
}

/** The text that replaces a secret. */
export function redactionMark(name: string): string {
  return `[REDACTED:${name}]`;
}

/** Derived forms shorter than this are left out: too likely to occur by chance. */
const MIN_EMBEDDED_BASE64_CHARS = 8;

/**
 * The spellings of a secret that redaction looks for, without duplicates:
 *   - the value itself;
 *   - percent-encoded with `encodeURIComponent`, with upper- and lower-case hex, and as a form
 *     field (`application/x-www-form-urlencoded`, space as "+");
 *   - inside a JSON string (`"` and `\` and control characters escaped);
 *   - its UTF-8 bytes read as Latin-1 (how a non-ASCII value shows in a header);
 *   - base64 of its UTF-8 bytes (with padding) and base64url (without);
 *   - base64 and base64url of it inside a longer encoded text (`user:secret` in a Basic
 *     Authorization, say): for each of the three alignments, the characters that depend on the
 *     secret's bytes alone (left out when shorter than 8 characters).
 * Other encodings (hex, double encoding, compression inside the body) are not recognised.
 */
export function secretForms(value: string): string[] {
  if (value === "") return [];
  const forms = new Set<string>([value]);
  const percent = encodeURIComponent(value);
  forms.add(percent);
  forms.add(percent.replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase()));
  forms.add(new URLSearchParams([["", value]]).toString().slice(1));
  forms.add(JSON.stringify(value).slice(1, -1));
  const bytes = new TextEncoder().encode(value);
  forms.add(latin1(bytes));
  const base64 = toBase64(bytes);
  forms.add(base64);
  forms.add(toBase64Url(base64));
  for (let offset = 0; offset < 3; offset++) {
    const shifted = new Uint8Array(offset + bytes.length);
    shifted.set(bytes, offset);
    // Character i of base64 carries bits [6i, 6i + 6); the secret's bits are [8·offset, 8·(offset + length)).
    const first = Math.ceil((8 * offset) / 6);
    const end = Math.floor((8 * (offset + bytes.length)) / 6);
    const stable = toBase64(shifted).slice(first, end);
    if (stable.length >= MIN_EMBEDDED_BASE64_CHARS) {
      forms.add(stable);
      forms.add(toBase64Url(stable));
    }
  }
  return [...forms];
}

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

function toBase64(bytes: Uint8Array): string {
  return btoa(latin1(bytes));
}

function toBase64Url(base64: string): string {
  return base64.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Every form of every secret, ready for text and for bytes. */
class Redactor {
  /** Form → credential name (the first secret listed wins a shared form). */
  readonly #nameOf = new Map<string, string>();
  readonly #pattern: RegExp | null;
  readonly pairs: ReplacePair[];

  constructor(secrets: NamedSecret[]) {
    for (const s of secrets) for (const form of secretForms(s.value)) if (!this.#nameOf.has(form)) this.#nameOf.set(form, s.name);
    // Longest first, so that the regex alternation (which takes the first alternative that
    // matches) picks the longest form at each position, like the byte replacer.
    const forms = [...this.#nameOf.keys()].sort((a, b) => b.length - a.length);
    this.#pattern = forms.length ? new RegExp(forms.map(escapeRegExp).join("|"), "g") : null;
    const enc = new TextEncoder();
    this.pairs = forms.map((form) => {
      const name = this.#nameOf.get(form)!;
      return { from: enc.encode(form), to: enc.encode(redactionMark(name)), name };
    });
  }

  get empty(): boolean {
    return this.#pattern === null;
  }

  /** `text` redacted; `count` is told each redaction. */
  text(text: string, count: () => void = () => {}): string {
    if (!this.#pattern) return text;
    return text.replace(this.#pattern, (form) => {
      count();
      return redactionMark(this.#nameOf.get(form)!);
    });
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** `text` with every form of every secret (see `secretForms`) replaced by `[REDACTED:NAME]`: for logs, errors, audit fields. */
export function redactText(text: string, secrets: NamedSecret[]): string {
  return new Redactor(secrets).text(text);
}

/** `redactResponse`'s answer. */
export interface RedactedResponse {
  /** The response for the sandbox. */
  response: Response;
  /** Secrets redacted so far: headers at once, the body as it streams (final once it has been read). */
  redactions(): number;
  /** Set when the body cannot be redacted (an encoding that cannot be decoded here); the body then fails with this message. */
  refusal?: string;
}

/** A response body that cannot be redacted. */
export class RedactionError extends Error {
  readonly code = "redaction_impossible";
  constructor(message: string) {
    super(message);
    this.name = "RedactionError";
  }
}

/**
 * The response with every form of every secret (see `secretForms`) replaced by
 * `[REDACTED:NAME]` in header values, the status text and the body (streamed, never buffered;
 * content-length dropped since the length changes). A gzip or deflate (zlib) body is decoded
 * first (`DecompressionStream`) and handed on decoded, without content-encoding; any other
 * content-encoding (br, zstd, ...) cannot be looked into, so the body is refused: it errors
 * with a `RedactionError` at the first read and `refusal` says why. (The gateway asks upstream
 * for `accept-encoding: identity` when it injected anything, so this is a fallback.)
 * With no secrets the response is returned as it is.
 */
export function redactResponse(res: Response, secrets: NamedSecret[]): RedactedResponse {
  const redactor = new Redactor(secrets);
  if (redactor.empty) return { response: res, redactions: () => 0 };
  let redactions = 0;
  const count = () => void redactions++;

  const headers = new Headers();
  for (const [name, value] of res.headers) headers.append(name, redactor.text(value, count));
  const init = { status: res.status, statusText: redactor.text(res.statusText, count), headers };
  if (!res.body) return { response: new Response(null, init), redactions: () => redactions };

  headers.delete("content-length");
  // Codings are listed in the order they were applied: undo them last first.
  const codings = (res.headers.get("content-encoding") ?? "")
    .split(",")
    .map((c) => c.trim())
    .filter((c) => c !== "" && c.toLowerCase() !== "identity")
    .reverse();
  const unknown = codings.find((c) => decoderFormat(c) === null);
  if (unknown !== undefined) {
    // The coding's name comes from upstream: redacted too, in case it echoes a secret.
    const refusal = `cannot redact secrets from a response with content-encoding ${redactor.text(unknown)}: only gzip and deflate can be decoded`;
    void res.body.cancel(refusal).catch(() => {});
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.error(new RedactionError(refusal));
      },
    });
    return { response: new Response(failing, init), redactions: () => redactions, refusal };
  }
  let decoded = res.body;
  for (const coding of codings) decoded = decoded.pipeThrough(new DecompressionStream(decoderFormat(coding)!));
  headers.delete("content-encoding");
  const body = decoded.pipeThrough(replaceStream(redactor.pairs, { onMatch: count }));
  return { response: new Response(body, init), redactions: () => redactions };
}

/** The `DecompressionStream` format for a content-coding, or null when there is none. */
function decoderFormat(coding: string): CompressionFormat | null {
  const name = coding.toLowerCase();
  if (name === "gzip" || name === "x-gzip") return "gzip";
  if (name === "deflate") return "deflate";
  return null;
}
