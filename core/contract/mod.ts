export * from "./work.ts";
export * from "./events.ts";
export * from "./session.ts";
export * from "./errors.ts";
