import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Credential } from "../core/policy/schema.ts";
import { scanStream } from "./stream-replace.ts";
import {
  CredentialInjectionError,
  createSecretSource,
  findPlaceholders,
  injectCredentials,
  placeholderOf,
  placeholderScanPattern,
  placeholdersInRequest,
  RedactionError,
  redactResponse,
  redactText,
  SecretUnavailableError,
  secretForms,
} from "./credentials.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function credential(name: string, places: Credential["in"]): Credential {
  return { name, secret: { env: `${name}_VALUE` }, hosts: ["api.example.test"], in: places, require: false };
}

/** A stream of `bytes` cut into the given chunk sizes (the rest in one last chunk). */
function chunked(bytes: Uint8Array, sizes: number[]): ReadableStream<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let at = 0;
  for (const n of sizes) {
    chunks.push(bytes.slice(at, at + n));
    at += n;
  }
  chunks.push(bytes.slice(at));
  return new ReadableStream<Uint8Array>({
    pull(c) {
      const next = chunks.shift();
      if (next) c.enqueue(next);
      else c.close();
    },
  });
}

/** Every byte of a stream, or the error it failed with. */
async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const reader = stream.getReader();
  const parts: Uint8Array[] = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function compress(text: string, format: CompressionFormat): Promise<Uint8Array> {
  return readAll(new Blob([text]).stream().pipeThrough(new CompressionStream(format)));
}

describe("placeholders", () => {
  it("names a placeholder by its longest name", () => {
    expect(placeholderOf("GITHUB")).toBe("DEFT_SECRET_GITHUB");
    expect(findPlaceholders("a DEFT_SECRET_GITHUB_APP b DEFT_SECRET_GITHUB, DEFT_SECRET_GITHUB_APP again")).toEqual(["GITHUB_APP", "GITHUB"]);
    expect(findPlaceholders("xDEFT_SECRET_NPM2.")).toEqual(["NPM2"]);
    expect(findPlaceholders("DEFT_SECRET_lower DEFT_SECRET_ DEFT_SECRET_9X deft_secret_X")).toEqual([]);
  });

  it("finds placeholders in header values and in the query, raw and decoded, but not in the body or path", () => {
    const req = new Request("http://h.test/DEFT_SECRET_PATH?a=DEFT_SECRET_RAW&b=DEFT%5FSECRET%5FENCODED&DEFT_SECRET_KEY=1", {
      method: "POST",
      headers: { authorization: "Bearer DEFT_SECRET_AUTH", "x-other": "DEFT_SECRET_AUTH DEFT_SECRET_OTHER" },
      body: "DEFT_SECRET_BODY",
    });
    expect(placeholdersInRequest(req).sort()).toEqual(["AUTH", "ENCODED", "KEY", "OTHER", "RAW"]);
    expect(placeholdersInRequest(new Request("http://h.test/"))).toEqual([]);
  });

  it("gives scanStream a placeholder pattern that respects the name boundary", async () => {
    const found: string[] = [];
    const body = "a=DEFT_SECRET_GITHUB_APP&b=DEFT_SECRET_GITHUB";
    const out = await readAll(chunked(enc.encode(body), [20, 6]).pipeThrough(scanStream([placeholderScanPattern("GITHUB")], (n) => void found.push(n))));
    expect(dec.decode(out)).toBe(body);
    expect(found).toEqual(["GITHUB"]);
  });
});

describe("createSecretSource", () => {
  const allValues = ["env-value-1", "file-value-2", "resolved-value-3", "other-secret-4"];
  const files: Record<string, string> = { "/s/plain": "file-value-2\n", "/s/crlf": "file-value-2\r\n", "/s/two": "file-value-2\n\n", "/s/empty": "\n" };
  const readTextFile = async (path: string) => {
    const text = files[path];
    if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${path}'`);
    return text;
  };

  it("reads environment variables, files (one trailing newline trimmed) and resolvers", async () => {
    const keys: Array<string | undefined> = [];
    const source = createSecretSource({
      env: { GH_TOKEN: "env-value-1" },
      readTextFile,
      resolvers: {
        vault: async (key) => {
          keys.push(key);
          return "resolved-value-3";
        },
      },
    });
    expect(await source.get({ env: "GH_TOKEN" }, "GITHUB")).toBe("env-value-1");
    expect(await source.get({ file: "/s/plain" }, "F")).toBe("file-value-2");
    expect(await source.get({ file: "/s/crlf" }, "F")).toBe("file-value-2");
    expect(await source.get({ file: "/s/two" }, "F")).toBe("file-value-2\n");
    expect(await source.get({ resolver: "vault", key: "gh" }, "V")).toBe("resolved-value-3");
    expect(keys).toEqual(["gh"]);
  });

  it("caches a value for the ttl, shares concurrent reads, and does not cache failures", async () => {
    let clock = 0;
    let reads = 0;
    let fail = true;
    const source = createSecretSource({
      env: {},
      readTextFile,
      ttlMs: 1000,
      now: () => clock,
      resolvers: {
        counted: async () => {
          reads++;
          return `value-${reads}`;
        },
        flaky: async () => {
          if (fail) throw new Error("backend down");
          return "recovered";
        },
      },
    });
    const ref = { resolver: "counted" };
    expect(await Promise.all([source.get(ref, "A"), source.get(ref, "B")])).toEqual(["value-1", "value-1"]);
    clock = 999;
    expect(await source.get(ref, "A")).toBe("value-1");
    clock = 1000;
    expect(await source.get(ref, "A")).toBe("value-2");
    expect(reads).toBe(2);

    await expect(source.get({ resolver: "flaky" }, "FLAKY")).rejects.toThrow("credential FLAKY: resolver \"flaky\" failed: backend down");
    fail = false;
    expect(await source.get({ resolver: "flaky" }, "FLAKY")).toBe("recovered");

    const uncached = createSecretSource({ env: {}, readTextFile, ttlMs: 0, resolvers: { counted: async () => `n${++reads}` } });
    expect(await uncached.get(ref, "A")).not.toBe(await uncached.get(ref, "A"));
  });

  it("fails with an error naming the credential, never a value, when a secret is missing or empty", async () => {
    const source = createSecretSource({
      env: { GH_TOKEN: "", OTHER: "other-secret-4", PRESENT: "env-value-1" },
      readTextFile,
      resolvers: {
        broken: async () => {
          throw new Error("permission denied");
        },
        blank: async () => "",
      },
    });
    const cases: Array<[Parameters<typeof source.get>[0], string, RegExp]> = [
      [{ env: "MISSING" }, "GITHUB", /^credential GITHUB: environment variable MISSING is not set$/],
      [{ env: "GH_TOKEN" }, "GITHUB", /^credential GITHUB: environment variable GH_TOKEN is empty$/],
      [{ file: "/s/none" }, "FILE_CRED", /^credential FILE_CRED: cannot read secret file \/s\/none: ENOENT/],
      [{ file: "/s/empty" }, "FILE_CRED", /^credential FILE_CRED: secret file \/s\/empty is empty$/],
      [{ resolver: "nope" }, "R", /^credential R: no secret resolver named "nope" is configured$/],
      [{ resolver: "broken", key: "k" }, "R", /^credential R: resolver "broken" \(key "k"\) failed: permission denied$/],
      [{ resolver: "blank" }, "R", /^credential R: resolver "blank" returned an empty value$/],
    ];
    for (const [ref, name, message] of cases) {
      const err = await source.get(ref, name).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SecretUnavailableError);
      expect((err as SecretUnavailableError).code).toBe("secret_unavailable");
      expect((err as SecretUnavailableError).credential).toBe(name);
      expect((err as Error).message).toMatch(message);
      for (const v of allValues) expect((err as Error).message).not.toContain(v);
    }
  });
});

describe("injectCredentials", () => {
  it("replaces placeholders in header values, only for credentials allowed in headers", () => {
    const req = new Request("http://api.example.test/", {
      headers: { authorization: "Bearer DEFT_SECRET_GITHUB", "x-app": "DEFT_SECRET_GITHUB_APP", "x-query-only": "DEFT_SECRET_Q", "x-unknown": "DEFT_SECRET_NOPE" },
    });
    const { request, injected } = injectCredentials(req, [
      { credential: credential("GITHUB", ["header"]), value: "ghp_real" },
      { credential: credential("Q", ["query"]), value: "q-real" },
    ]);
    expect(request.headers.get("authorization")).toBe("Bearer ghp_real");
    expect(request.headers.get("x-app")).toBe("DEFT_SECRET_GITHUB_APP");
    expect(request.headers.get("x-query-only")).toBe("DEFT_SECRET_Q");
    expect(request.headers.get("x-unknown")).toBe("DEFT_SECRET_NOPE");
    expect([...injected]).toEqual(["GITHUB"]);
  });

  it("replaces a query placeholder with the value percent-encoded; the server reads the exact value", () => {
    const secret = "a&b=c+d/e f?g#h%i";
    const req = new Request("http://api.example.test/x?before=1&token=DEFT_SECRET_Q&h=DEFT_SECRET_H&after=2#frag");
    const { request, injected } = injectCredentials(req, [
      { credential: credential("Q", ["query"]), value: secret },
      { credential: credential("H", ["header"]), value: "header-only" },
    ]);
    const url = new URL(request.url);
    expect(url.search).toBe(`?before=1&token=${encodeURIComponent(secret)}&h=DEFT_SECRET_H&after=2`);
    expect(url.searchParams.get("token")).toBe(secret);
    expect([...url.searchParams.keys()]).toEqual(["before", "token", "h", "after"]);
    expect([...injected]).toEqual(["Q"]);
  });

  it("leaves a body placeholder of a credential allowed only in headers untouched, and keeps content-length", async () => {
    const body = "token=DEFT_SECRET_GITHUB";
    const req = new Request("http://api.example.test/", { method: "POST", headers: { "content-length": String(body.length), authorization: "DEFT_SECRET_GITHUB" }, body });
    const { request, injected } = injectCredentials(req, [{ credential: credential("GITHUB", ["header"]), value: "ghp_real" }]);
    expect(request.headers.get("content-length")).toBe(String(body.length));
    expect(request.headers.get("authorization")).toBe("ghp_real");
    expect(await request.text()).toBe(body);
    expect([...injected]).toEqual(["GITHUB"]);
  });

  it("replaces body placeholders as the body streams, drops content-length, and reports them once seen", async () => {
    const text = "a=DEFT_SECRET_GITHUB&b=DEFT_SECRET_GITHUB_APP&c=DEFT_SECRET_GITHUBS&d=DEFT_SECRET_GITHUB";
    const bytes = enc.encode(text);
    const req = new Request("http://api.example.test/", { method: "POST", headers: { "content-length": String(bytes.length) }, body: chunked(bytes, [5, 1, 9, 3, 20]), duplex: "half" } as RequestInit);
    const { request, injected } = injectCredentials(req, [
      { credential: credential("GITHUB", ["body"]), value: "ghp_real" },
      { credential: credential("GITHUB_APP", ["header"]), value: "app_real" },
    ]);
    expect(request.headers.has("content-length")).toBe(false);
    expect(injected.size).toBe(0); // nothing read yet
    expect(await request.text()).toBe("a=ghp_real&b=DEFT_SECRET_GITHUB_APP&c=DEFT_SECRET_GITHUBS&d=ghp_real");
    expect([...injected]).toEqual(["GITHUB"]);
  });

  it("keeps method, headers and content-length of a request without a body", () => {
    const req = new Request("http://api.example.test/", { method: "DELETE", headers: { "content-length": "0", "x-keep": "1" } });
    const { request } = injectCredentials(req, [{ credential: credential("GITHUB", ["header", "body"]), value: "v" }]);
    expect(request.method).toBe("DELETE");
    expect(request.body).toBeNull();
    expect(request.headers.get("content-length")).toBe("0");
    expect(request.headers.get("x-keep")).toBe("1");
  });

  it("refuses a value that cannot be a header value, without quoting it", () => {
    const req = new Request("http://api.example.test/", { headers: { authorization: "DEFT_SECRET_BAD" } });
    const value = "line1\r\nx-injected: evil";
    const err = (() => {
      try {
        injectCredentials(req, [{ credential: credential("BAD", ["header"]), value }]);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(CredentialInjectionError);
    expect((err as CredentialInjectionError).credential).toBe("BAD");
    expect((err as Error).message).toContain("header authorization");
    expect((err as Error).message).not.toContain("line1");
  });

  describe("over real HTTP", () => {
    let server: Server;
    let port = 0;
    const received: Array<{ headers: IncomingHttpHeaders; url: string; body: Buffer }> = [];
    beforeAll(async () => {
      server = createServer((req, res) => {
        const parts: Buffer[] = [];
        req.on("data", (c: Buffer) => parts.push(c));
        req.on("end", () => {
          received.push({ headers: req.headers, url: req.url ?? "", body: Buffer.concat(parts) });
          res.end("ok");
        });
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it("a loopback server receives the injected body byte-exact (streamed, split placeholders, non-ASCII)", async () => {
      const secret = "sk_live_é✓/+=&\n\u0000end";
      const binary = new Uint8Array(300).map((_, i) => (i * 37) & 0xff);
      const parts = [binary.subarray(0, 100), enc.encode("DEFT_SECRET_API"), binary.subarray(100, 200), enc.encode("x:DEFT_SECRET_API;DEFT_SECRET_APIX;DEFT_SECRET_API"), binary.subarray(200)];
      const input = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      const expectedParts = [binary.subarray(0, 100), enc.encode(secret), binary.subarray(100, 200), enc.encode(`x:${secret};DEFT_SECRET_APIX;${secret}`), binary.subarray(200)];
      const expected = new Uint8Array(expectedParts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        input.set(p, at);
        at += p.length;
      }
      at = 0;
      for (const p of expectedParts) {
        expected.set(p, at);
        at += p.length;
      }
      // Cut the stream so that the placeholders straddle chunk boundaries.
      const sizes = [7, 95, 3, 9, 1, 1, 100, 8, 4, 11];
      const req = new Request(`http://127.0.0.1:${port}/upload?k=DEFT_SECRET_API`, {
        method: "PUT",
        headers: { "content-type": "application/octet-stream", "x-api": "DEFT_SECRET_API" },
        body: chunked(input, sizes),
        duplex: "half",
      } as RequestInit);
      const { request, injected } = injectCredentials(req, [{ credential: credential("API", ["body", "query"]), value: secret }]);
      const res = await fetch(request);
      expect(await res.text()).toBe("ok");
      const got = received.at(-1)!;
      expect(Buffer.compare(got.body, Buffer.from(expected))).toBe(0);
      expect(got.headers["x-api"]).toBe("DEFT_SECRET_API"); // not allowed in headers
      expect(got.headers["content-length"]).toBeUndefined();
      expect(got.headers["transfer-encoding"]).toBe("chunked");
      expect(new URL(got.url, "http://x").searchParams.get("k")).toBe(secret);
      expect([...injected].sort()).toEqual(["API"]);
    });
  });
});

describe("redaction", () => {
  const TOKEN = "ghp_S3cr3t+/value=42";
  const secrets = [{ name: "GITHUB", value: TOKEN }];

  it("lists the spellings it looks for", () => {
    const forms = secretForms("a b/é");
    expect(forms).toContain("a b/é");
    expect(forms).toContain("a%20b%2F%C3%A9");
    expect(forms).toContain("a%20b%2f%c3%a9");
    expect(forms).toContain("a+b%2F%C3%A9");
    expect(forms).toContain("a b/Ã©");
    expect(forms).toContain(btoa("a b/Ã©"));
    expect(secretForms("")).toEqual([]);
    expect(new Set(secretForms("plain")).size).toBe(secretForms("plain").length);
  });

  it("redacts text: every form, the longest secret first", () => {
    const list = [
      { name: "SHORT", value: "abc123" },
      { name: "LONG", value: "abc123-extended" },
    ];
    expect(redactText("x abc123-extended y abc123 z", list)).toBe("x [REDACTED:LONG] y [REDACTED:SHORT] z");
    expect(redactText(`url?t=${encodeURIComponent(TOKEN)} json:${JSON.stringify(TOKEN)}`, secrets)).toBe('url?t=[REDACTED:GITHUB] json:"[REDACTED:GITHUB]"');
    expect(redactText("nothing here", secrets)).toBe("nothing here");
    expect(redactText("a.b*c", [{ name: "RE", value: "." }])).toBe("a[REDACTED:RE]b*c");
  });

  it("redacts headers and a body echo split across chunks, and counts", async () => {
    const body = `{"auth":"Bearer ${TOKEN}","again":"${TOKEN}"}`;
    const res = new Response(chunked(enc.encode(body), [12, 1, 1, 5]), { headers: { "x-echo": TOKEN, "content-length": String(body.length), "set-cookie": `a=${TOKEN}` } });
    const red = redactResponse(res, secrets);
    expect(red.response.headers.get("x-echo")).toBe("[REDACTED:GITHUB]");
    expect(red.response.headers.getSetCookie()).toEqual(["a=[REDACTED:GITHUB]"]);
    expect(red.response.headers.has("content-length")).toBe(false);
    expect(red.redactions()).toBe(2);
    expect(await red.response.text()).toBe('{"auth":"Bearer [REDACTED:GITHUB]","again":"[REDACTED:GITHUB]"}');
    expect(red.redactions()).toBe(4);
  });

  it("redacts base64, base64url, percent-encoded and Basic-auth echoes", async () => {
    const utf8 = enc.encode(TOKEN);
    const base64 = btoa(String.fromCharCode(...utf8));
    const base64url = base64.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    const basic = btoa(`octocat:${TOKEN}`);
    const body = [base64, base64url, encodeURIComponent(TOKEN), basic].join("\n");
    const red = redactResponse(new Response(body), secrets);
    const out = await red.response.text();
    const lines = out.split("\n");
    expect(lines[0]).toBe("[REDACTED:GITHUB]");
    expect(lines[1]).toBe("[REDACTED:GITHUB]");
    expect(lines[2]).toBe("[REDACTED:GITHUB]");
    // Inside "octocat:<token>" the token's base64 is not aligned: the characters carrying only
    // token bits are redacted; the edge characters keep at most 4 of its bits each.
    const tokenStartBit = 8 * "octocat:".length;
    const first = Math.ceil(tokenStartBit / 6);
    const end = Math.floor((tokenStartBit + 8 * utf8.length) / 6);
    expect(lines[3]).toBe(`${basic.slice(0, first)}[REDACTED:GITHUB]${basic.slice(end)}`);
    for (const form of [TOKEN, base64, base64url, encodeURIComponent(TOKEN)]) expect(out).not.toContain(form);
    expect(red.redactions()).toBe(4);
  });

  it("decodes a gzip or deflate body to redact it, and drops content-encoding and content-length", async () => {
    for (const format of ["gzip", "deflate"] as const) {
      const packed = await compress(`you sent ${TOKEN}`, format);
      const res = new Response(chunked(packed, [3, 3]), { headers: { "content-encoding": format.toUpperCase(), "content-length": String(packed.length) } });
      const red = redactResponse(res, secrets);
      expect(red.response.headers.has("content-encoding")).toBe(false);
      expect(red.response.headers.has("content-length")).toBe(false);
      expect(await red.response.text()).toBe("you sent [REDACTED:GITHUB]");
      expect(red.redactions()).toBe(1);
    }
  });

  it("refuses a body it cannot decode (br), with a clear error", async () => {
    let cancelled = false;
    const upstream = new ReadableStream<Uint8Array>({
      pull(c) {
        c.enqueue(enc.encode("opaque"));
      },
      cancel() {
        cancelled = true;
      },
    });
    const red = redactResponse(new Response(upstream, { headers: { "content-encoding": "br" } }), secrets);
    expect(red.refusal).toMatch(/content-encoding br/);
    const err = await red.response.text().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedactionError);
    expect((err as Error).message).toBe("cannot redact secrets from a response with content-encoding br: only gzip and deflate can be decoded");
    expect(cancelled).toBe(true);
    // An upstream that puts the secret in content-encoding does not get it through the error.
    const sneaky = redactResponse(new Response("x", { headers: { "content-encoding": `gzip, ${TOKEN}` } }), secrets);
    expect(sneaky.refusal).toBe("cannot redact secrets from a response with content-encoding [REDACTED:GITHUB]: only gzip and deflate can be decoded");
    expect(sneaky.response.headers.get("content-encoding")).toBe("gzip, [REDACTED:GITHUB]");
  });

  it("returns the response as it is when there is nothing to redact, and handles a bodiless one", async () => {
    const res = new Response("x", { headers: { "content-encoding": "br" } });
    expect(redactResponse(res, []).response).toBe(res);
    const empty = redactResponse(new Response(null, { status: 204, headers: { "x-t": TOKEN } }), secrets);
    expect(empty.response.status).toBe(204);
    expect(empty.response.headers.get("x-t")).toBe("[REDACTED:GITHUB]");
    expect(empty.response.body).toBeNull();
  });
});
