export * from "./sandbox.ts";
export * from "./snapshot.ts";
