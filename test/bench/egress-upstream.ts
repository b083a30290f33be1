// The egress bench's upstream, in its own process: /small answers 2 bytes, /big streams 100 MB,
// /upload counts the bytes it receives. Prints its port on stdout.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

const BIG = 100 * 1024 * 1024;
const chunk = Buffer.alloc(64 * 1024, 120);

const server = createServer((req, res) => {
  if (req.url === "/upload") {
    let n = 0;
    req.on("data", (c: Buffer) => (n += c.length));
    req.on("end", () => res.end(String(n)));
    return;
  }
  req.resume();
  if (req.url === "/big") {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(BIG) });
    let left = BIG;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return;
      }
      res.end();
    };
    res.on("drain", pump);
    pump();
    return;
  }
  res.writeHead(200, { "content-type": "text/plain", "content-length": "2" });
  res.end("ok");
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
