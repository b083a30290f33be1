export * from "./memory-workspace.ts";
export * from "./workspace-tools.ts";
