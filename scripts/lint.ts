// `npm run lint`: the project's conventions (see scripts/conventions.ts).
import { checkConventions, checkLayering } from "./conventions.ts";

const root = new URL("..", import.meta.url).pathname;
const { offences } = checkLayering(root);
const problems = [...offences, ...checkConventions(root)];
for (const p of problems) console.error(p);
console.log(problems.length ? `lint: ${problems.length} problem(s)` : "lint: clean");
process.exit(problems.length ? 1 : 0);
