/**
 * The hosts `networking.allow_package_managers: true` opens (any port, any method and path):
 *
 *   npm        registry.npmjs.org, registry.yarnpkg.com
 *   PyPI       pypi.org, files.pythonhosted.org
 *   crates     crates.io, static.crates.io, index.crates.io
 *   Go         proxy.golang.org, sum.golang.org
 *   RubyGems   rubygems.org, index.rubygems.org
 *   apt        deb.debian.org, security.debian.org, archive.ubuntu.com, security.ubuntu.com
 *   Alpine     dl-cdn.alpinelinux.org
 *
 * Exact hosts only, no wildcards: a registry's other subdomains (and source hosts such as
 * github.com, which `go get` may fall back to) need `allowed_hosts`.
 */

/** One package ecosystem and the hosts its client talks to. */
export interface PackageRegistry {
  ecosystem: string;
  hosts: readonly string[];
}

/** The registries `allow_package_managers` opens, in the order listed above. */
export const PACKAGE_REGISTRIES: readonly PackageRegistry[] = [
  { ecosystem: "npm", hosts: ["registry.npmjs.org", "registry.yarnpkg.com"] },
  { ecosystem: "PyPI", hosts: ["pypi.org", "files.pythonhosted.org"] },
  { ecosystem: "crates", hosts: ["crates.io", "static.crates.io", "index.crates.io"] },
  { ecosystem: "Go", hosts: ["proxy.golang.org", "sum.golang.org"] },
  { ecosystem: "RubyGems", hosts: ["rubygems.org", "index.rubygems.org"] },
  { ecosystem: "apt", hosts: ["deb.debian.org", "security.debian.org", "archive.ubuntu.com", "security.ubuntu.com"] },
  { ecosystem: "Alpine", hosts: ["dl-cdn.alpinelinux.org"] },
];

/** Every host `allow_package_managers` opens. */
export const PACKAGE_MANAGER_HOSTS: readonly string[] = PACKAGE_REGISTRIES.flatMap((r) => r.hosts);
