/**
 * The egress policy engine: parse and compile a policy file, decide each request a sandbox
 * makes, and check the addresses it resolves to. Runtime-neutral and pure; `proxy/` drives it.
 */
export { checkAddress, classifyAddress, METADATA_ADDRESSES } from "./address.ts";
export { compilePolicy, defaultPort, portOf, type CompiledCredential, type CompiledPolicy, type CompiledRule, type CompiledService } from "./compile.ts";
export { CONFORMANCE_CASES, runConformance, type ConformanceCase } from "./conformance.ts";
export { decide } from "./decide.ts";
export { compileHostPattern, hostMatches, normalizeHost, parseAuthority, type Authority, type HostMatcher, type NormalizedHost } from "./host.ts";
export { PACKAGE_MANAGER_HOSTS, PACKAGE_REGISTRIES, type PackageRegistry } from "./packages.ts";
export { formatPath, parsePolicy, policyIssues } from "./parse.ts";
export { compilePaths, pathProblem, type PathCheck, type PathMatcher } from "./paths.ts";
export { PolicyError } from "./policy-error.ts";
export { PolicySchema, type Policy, type PolicyInput } from "./schema.ts";
export type { AddressVerdict, Decision, EgressRequest, EgressVia, SessionContext } from "./types.ts";
