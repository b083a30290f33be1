export * from "./protocol.ts";
export * from "./guest.ts";
export * from "./stdio-guest.ts";
export * from "./deno-guest.ts";
export * from "./isolate-sandbox.ts";
export * from "./transpile.ts";
