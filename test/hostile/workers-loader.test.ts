// The hostile suite against the workers-loader tier: dynamic workers through the Worker Loader
// binding, under real workerd (through Miniflare), hosted from Node.
import { IsolatePool } from "../../isolates/mod.ts";
import { workersLoaderHost } from "../../runtimes/workers/loader-host.ts";
import { describeHostileTier } from "./tier-report.ts";

describeHostileTier(
  "hostile code: workers-loader tier (workerd through Miniflare, hosted from Node)",
  { tier: "workers-loader", notStopped: {} },
  () => new IsolatePool(workersLoaderHost(), 2),
  120_000,
);
