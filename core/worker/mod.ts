export * from "./worker.ts";
export * from "./lease.ts";
