// The Deno guest's stdio for the line-delimited protocol (isolates/stdio-guest.ts): read stdin as
// a stream, write stdout synchronously (a flooding snippet then blocks on the pipe).
import type { StdioGuestIo } from "../../isolates/stdio-guest.ts";

export const DENO_STDIO: StdioGuestIo = {
  stdin: "Deno.stdin.readable",
  write: "(b) => { for (let o = 0; o < b.length; ) o += Deno.stdout.writeSync(b.subarray(o)); }",
  readSync: "(b) => Deno.stdin.readSync(b)",
};
