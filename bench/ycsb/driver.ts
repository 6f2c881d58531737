/**
 * What the load generator needs of a target: a put and a get of one key. Each target's driver
 * lives in its own file; the generator's loop, workloads and histograms are the same for all.
 */

/** How the load generator reaches a target, as the bench hands it over (JSON). */
export type TargetSpec =
  /** Shoal members' multiaddrs; routing as createClient's option. */
  | { readonly kind: 'shoal', readonly addrs: readonly string[], readonly routing: 'server' | 'client' }
  /** Floor servers' multiaddrs (bench/floor-server.ts). */
  | { readonly kind: 'floor', readonly addrs: readonly string[] }
  /** kad-dht server peers' multiaddrs (bench/ycsb/kad-server.ts). */
  | { readonly kind: 'kad-dht', readonly addrs: readonly string[] }
  /** etcd members' client URLs. */
  | { readonly kind: 'etcd', readonly urls: readonly string[] }

export interface Driver {
  /** Writes `value` under `key`, replacing what is there; resolves once the target acknowledged it. */
  put: (key: string, value: Uint8Array) => Promise<void>
  /** Reads `key`; throws unless a value of `valueBytes` came back. */
  get: (key: string) => Promise<void>
  /** Figures a target adds to the report (Shoal: the most siblings a read returned). */
  stats: () => Record<string, number>
  stop: () => Promise<void>
}

export interface DriverOptions {
  readonly valueBytes: number
  /** How many callers will use the driver at once (sizes connection pools). */
  readonly concurrency: number
  /** Longest wait for the target to be ready (a cluster formed, peers connected). */
  readonly readyTimeoutMs: number
}

/** Loads only the target's own libraries, so a kad-dht run never imports etcd's client and so on. */
export async function createDriver (spec: TargetSpec, options: DriverOptions): Promise<Driver> {
  switch (spec.kind) {
    case 'shoal': return await (await import('./shoal-driver.ts')).shoalDriver(spec.addrs, spec.routing, options)
    case 'floor': return await (await import('./floor-driver.ts')).floorDriver(spec.addrs, options)
    case 'kad-dht': return await (await import('./kad-driver.ts')).kadDriver(spec.addrs, options)
    case 'etcd': return await (await import('./etcd-driver.ts')).etcdDriver(spec.urls, options)
  }
}

/** Client i lists item i first. */
export function rotated<T> (items: readonly T[], by: number): T[] {
  return [...items.slice(by), ...items.slice(0, by)]
}

export class WrongValueError extends Error {
  override readonly name = 'WrongValueError'
}
