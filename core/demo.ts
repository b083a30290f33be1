/**
 * The demo that `deft dev` runs on its embedded defaults: a scenario for the emulator's brain
 * and the custom tool it calls. Kept in code (not a file) so it runs on every runtime.
 */
import { z } from "zod";
import type { Scenario } from "./emulator/mod.ts";
import { defineTool, type Tool } from "./router/mod.ts";

/** A custom tool the demo's agent declares; Deft answers it as `user.custom_tool_result`. */
export function demoCustomTools(runtimeName: string, sandboxLabel: () => string = () => "the host process"): Tool[] {
  return [
    defineTool({
      name: "deft_whereami",
      description: "Say which runtime this Deft worker runs on.",
      input: z.object({ verbose: z.boolean().optional() }),
      run: ({ verbose }) => (verbose ? `Deft worker on ${runtimeName}; tools run in: ${sandboxLabel()}` : `Deft worker on ${runtimeName}`),
    }),
  ];
}

/**
 * The demo scenario. `custom: true` (what `deft dev` runs) adds a call to the custom tool
 * `deft_whereami`, which only `deft dev` registers; `deft emulator` serves it without, so that a
 * plain `deft worker` can finish it.
 */
export function demoScenario({ custom }: { custom: boolean }): Scenario {
  if (custom) return DEMO_SCENARIO;
  const strip = (calls: Array<{ custom?: boolean }>) => calls.filter((c) => !c.custom);
  return {
    ...DEMO_SCENARIO,
    custom_tools: [],
    turns: DEMO_SCENARIO.turns.map((t) => ({ ...t, steps: (t.steps ?? []).map((st) => ({ ...st, calls: strip(st.calls ?? []) as typeof st.calls })) })),
  };
}

const DEMO_SCENARIO: Scenario = {
  name: "deft-dev-demo",
  description: "Sets up a tiny project with the file tools, edits and searches it, then runs code over it in the sandbox.",
  custom_tools: [
    {
      name: "execute",
      description: "Run a JavaScript or TypeScript snippet in the session's sandbox.",
      input_schema: { type: "object", properties: { code: { type: "string" }, language: { type: "string", enum: ["js", "ts"] }, timeout_ms: { type: "integer" } }, required: ["code"] },
    },
    { name: "deft_whereami", description: "Say which runtime this Deft worker runs on.", input_schema: { type: "object", properties: { verbose: { type: "boolean" } } } },
  ],
  turns: [
    {
      user: "Create a tiny greeting module and a README for it.",
      steps: [
        {
          say: "I'll write both files at once.",
          calls: [
            { name: "write", input: { file_path: "src/greet.ts", content: 'export const greet = (who: string) => `Hello, ${who}!`;\n' }, expect: { is_error: false, contains: "wrote" } },
            { name: "write", input: { file_path: "README.md", content: "# greet\nSays hello.\n" }, expect: { is_error: false, contains: "wrote" } },
          ],
        },
        {
          calls: [{ name: "read", input: { file_path: "src/greet.ts" }, expect: { contains: "Hello" } }],
        },
      ],
      final: "Created src/greet.ts and README.md.",
    },
    {
      user: "Make it say Hi instead, then show me where greetings live.",
      steps: [
        {
          calls: [{ name: "edit", input: { file_path: "src/greet.ts", old_string: "Hello", new_string: "Hi" }, expect: { contains: "1 replacement" } }],
        },
        {
          say: "Searching the project, and checking where I run.",
          calls: [
            { name: "grep", input: { pattern: "Hi, " }, expect: { contains: "src/greet.ts:1:" } },
            { name: "glob", input: { pattern: "**/*.ts" }, expect: { contains: "greet.ts" } },
            { name: "bash", input: { command: "cd src && wc -c greet.ts && ls .." }, expect: { is_error: false, contains: "README.md" } },
            { name: "deft_whereami", custom: true, input: { verbose: true }, expect: { contains: "Deft worker on" } },
          ],
        },
        {
          calls: [{ name: "read", input: { file_path: "../etc/passwd" }, expect: { is_error: true, contains: "outside" } }],
        },
      ],
      final: "Done: greet() now says Hi, and reading outside the workspace was refused.",
    },
    {
      user: "Check the module with a script, and try to reach the internet from the sandbox.",
      steps: [
        {
          say: "One snippet reads the file, calls grep, writes a report and tries a fetch.",
          calls: [
            {
              name: "execute",
              custom: true,
              input: {
                language: "ts",
                code: [
                  "const src: string = await workspace.readFile('src/greet.ts');",
                  "const hits: string = await tools.grep({ pattern: 'Hi' });",
                  "console.log(`greet.ts is ${src.length} bytes; grep: ${hits.trim()}`);",
                  "await workspace.writeFile('out/report.json', JSON.stringify({ bytes: src.length }));",
                  "const status = (await fetch('https://example.com/')).status;",
                  "return { runtime: typeof Deno === 'object' ? 'deno' : typeof Bun === 'object' ? 'bun' : 'workerd', fetchStatus: status };",
                ].join("\n"),
              },
              expect: { is_error: false, contains: '"fetchStatus": 403' },
            },
          ],
        },
        {
          calls: [{ name: "read", input: { file_path: "out/report.json" }, expect: { contains: '"bytes"' } }],
        },
      ],
      final: "The snippet ran in the sandbox: it read and wrote the workspace, and its fetch was refused by the egress gateway (no --policy file: every request is refused, and audited).",
    },
  ],
  end: "terminate",
};
