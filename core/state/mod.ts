export * from "./store.ts";
export { MemoryBlobStore, MemoryStore } from "./memory.ts";
