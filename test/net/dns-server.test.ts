import dgram from "node:dgram";
import dns from "node:dns";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DnsServer, startDnsServer } from "./dns-server.ts";

describe("test DNS server", () => {
  let server: DnsServer;
  let resolver: dns.promises.Resolver;

  beforeAll(async () => {
    server = await startDnsServer({
      "api.example.test": ["203.0.113.7", "203.0.113.8", "2001:db8::7"],
      "v4only.test.": ["198.51.100.1"],
      "v6.test": ["::ffff:192.0.2.1", "fe80::1:2", "2001:db8:0:0:1::"],
      "rebind.test": (n) => (n === 1 ? ["203.0.113.9"] : ["127.0.0.1"]),
    });
    resolver = new dns.promises.Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([`127.0.0.1:${server.port}`]);
  });
  afterAll(() => server.close());

  it("answers A and AAAA queries from the table, with TTL 0", async () => {
    expect((await resolver.resolve4("api.example.test")).sort()).toEqual(["203.0.113.7", "203.0.113.8"]);
    expect(await resolver.resolve6("api.example.test")).toEqual(["2001:db8::7"]);
    expect(await resolver.resolve4("API.Example.TEST", { ttl: true })).toEqual([
      { address: "203.0.113.7", ttl: 0 },
      { address: "203.0.113.8", ttl: 0 },
    ]);
    expect(await resolver.resolve6("v6.test")).toEqual(["::ffff:192.0.2.1", "fe80::1:2", "2001:db8:0:0:1::"]);
  });

  it("says NXDOMAIN for an unknown name, and no data for a type the name lacks", async () => {
    const missing = await resolver.resolve4("missing.test").catch((e: NodeJS.ErrnoException) => e);
    expect((missing as NodeJS.ErrnoException).code).toBe("ENOTFOUND");
    const noV6 = await resolver.resolve6("v4only.test").catch((e: NodeJS.ErrnoException) => e);
    expect((noV6 as NodeJS.ErrnoException).code).toBe("ENODATA");
    expect(await resolver.resolve4("v4only.test")).toEqual(["198.51.100.1"]);
  });

  it("answers a rebinding name differently per query, counting per type", async () => {
    expect(await resolver.resolve4("rebind.test")).toEqual(["203.0.113.9"]);
    expect(server.queries("rebind.test")).toBe(1);
    expect(await resolver.resolve4("rebind.test")).toEqual(["127.0.0.1"]);
    expect(await resolver.resolve4("rebind.test")).toEqual(["127.0.0.1"]);
    expect(server.queries("rebind.test", "A")).toBe(3);
    expect(server.queries("rebind.test", "AAAA")).toBe(0);
    expect(server.queries("REBIND.test.")).toBe(3);
    expect(server.queries("never-asked.test")).toBe(0);
  });

  it("counts a lookup that asks A and AAAA together once", async () => {
    const before = server.queries("api.example.test");
    await Promise.all([resolver.resolve4("api.example.test"), resolver.resolve6("api.example.test")]);
    expect(server.queries("api.example.test")).toBe(before + 1);
  });

  it("answers a malformed query with FORMERR and a non-query opcode with NOTIMP", async () => {
    const client = dgram.createSocket("udp4");
    const ask = (msg: Buffer) =>
      new Promise<Buffer>((resolve) => {
        client.once("message", resolve);
        client.send(msg, server.port, "127.0.0.1");
      });
    try {
      // Header says one question; the question is a compression pointer.
      const formerr = await ask(Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1]));
      expect(formerr.readUInt16BE(0)).toBe(0x1234);
      expect(formerr.readUInt16BE(2) & 0x800f).toBe(0x8001);
      // Opcode 2 (STATUS).
      const notimp = await ask(Buffer.from([0xab, 0xcd, 0x10, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]));
      expect(notimp.readUInt16BE(2) & 0x800f).toBe(0x8004);
    } finally {
      client.close();
    }
  });
});
