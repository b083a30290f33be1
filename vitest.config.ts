import { defineConfig } from "vitest/config";
import { SummaryReporter } from "./test/summary-reporter.ts";

export default defineConfig({
  test: {
    include: ["{core,tools,isolates,proxy,runtimes,test}/**/*.test.ts"],
    exclude: ["**/node_modules/**", "test/bench/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    reporters: ["default", new SummaryReporter()],
  },
});
