/**
 * The one error the policy engine throws: a policy file (or a host, pattern or authority) that
 * cannot be used. `issues` holds one line per problem, each starting with the field's path
 * (`allow[0].hosts[1]: ...`), so a command line can print them one to a line.
 */
export class PolicyError extends Error {
  /** Stable code, for callers that map errors to exit codes or HTTP answers. */
  readonly code = "invalid_policy";
  /** One line per problem, each `path: what is wrong`. */
  readonly issues: readonly string[];

  constructor(issues: string | readonly string[]) {
    const list = typeof issues === "string" ? [issues] : [...issues];
    super(list.length === 1 ? list[0]! : `${list.length} problems:\n  ${list.join("\n  ")}`);
    this.name = "PolicyError";
    this.issues = list;
  }
}
