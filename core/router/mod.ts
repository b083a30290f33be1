export * from "./tool.ts";
export * from "./router.ts";
