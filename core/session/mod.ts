export * from "./runner.ts";
export * from "./ledger.ts";
