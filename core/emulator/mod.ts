// Public surface of the Managed Agents emulator.
export { createEmulator, type Emulator } from "./emulator.ts";
export type { EmulatorOptions, ObserveEvent } from "./core.ts";
export { ScenarioSchema, parseScenario, type Scenario, type ParsedScenario } from "./scenario.ts";
export type { Brain, BrainFactory, BrainHost } from "./brain.ts";
export { MessagesBrain, STANDARD_TOOL_DEFINITIONS, type MessagesBrainOptions } from "./messages-brain.ts";
export { ScenarioBrain } from "./scenario-brain.ts";
export { EmulatorHttpError } from "./errors.ts";
export { NO_HEARTBEAT } from "./work-queue.ts";
export type {
  CreateSessionInput,
  EmulatorControl,
  EmulatorStats,
  EventDraft,
  FaultRoute,
  Faults,
  SessionEvent,
  SessionReport,
  ToolUseReport,
  UserMessageSender,
  WorkObject,
  WorkState,
} from "./types.ts";
