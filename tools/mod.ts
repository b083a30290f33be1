export * from "./workspace-fs.ts";
export * from "./standard-toolset.ts";
