// The hostile suite against the Deno subprocess tier, hosted from Node (as `deft` on Node runs it).
import { IsolatePool } from "../../isolates/mod.ts";
import { denoSubprocessHost } from "../../runtimes/node/deno-isolates.ts";
import { describeHostileTier } from "./tier-report.ts";

describeHostileTier("hostile code: deno-subprocess tier (hosted from Node)", { tier: "deno-subprocess", notStopped: {} }, () => new IsolatePool(denoSubprocessHost(), 2, { memoryMiB: 64 }));
