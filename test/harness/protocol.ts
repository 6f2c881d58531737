/** The JSON lines between the chaos run and its workload process (set-workload.ts). */

/** ok: acknowledged. failed: definitely not applied (nothing was sent). unknown: anything else. */
export type AddOutcome = 'ok' | 'failed' | 'unknown'

/** One add of the set workload, as the workload recorded it. */
export interface AddRecord {
  readonly client: number
  readonly key: string
  readonly element: string
  readonly outcome: AddOutcome
  /** The error's name when the add was not acknowledged. */
  readonly error?: string
}

/** One increment of the counter workload, as the workload recorded it. */
export interface IncrementRecord {
  readonly client: number
  readonly key: string
  /** Added to the counter (positive). */
  readonly amount: number
  readonly outcome: AddOutcome
  readonly error?: string
}

/** One node's own copy of a key, as `shoal get --local` would show it. */
export interface LocalCopy {
  readonly context: string
  /** Sorted. */
  readonly elements: string[]
  readonly siblings: number
}

export type NodeReport =
  | {
    readonly node: number
    readonly hintsPending: number
    readonly membersUp: number
    readonly copies: Record<string, LocalCopy | null>
    /** The nodes owning each key in this node's ring (from its member table). */
    readonly owners?: Record<string, number[]>
    /** For the diagnosis of a run that did not settle: member states and anti-entropy counters, from status. */
    readonly detail?: string
  }
  | { readonly node: number, readonly error: string }

/** A key read through one node with R = N: its elements, or why the read failed. */
export type FinalRead = { readonly node: number, readonly elements: string[] } | { readonly node: number, readonly error: string }

export type WorkloadCommand =
  | { readonly cmd: 'init', readonly addrs: string[], readonly cluster: string, readonly timeoutMs: number, readonly keys: number, readonly n: number }
  | { readonly cmd: 'start', readonly clients: number, readonly seed: number }
  | { readonly cmd: 'stop' }
  | { readonly cmd: 'inspect' }
  | { readonly cmd: 'final', readonly r: number }
  | { readonly cmd: 'quit' }

export type WorkloadEvent =
  | { readonly event: 'ready' }
  | { readonly event: 'started' }
  | ({ readonly event: 'add', readonly ms: number } & AddRecord)
  | ({ readonly event: 'incr', readonly ms: number } & IncrementRecord)
  | { readonly event: 'stopped', readonly readsFailed: number }
  | { readonly event: 'inspected', readonly nodes: NodeReport[] }
  | { readonly event: 'final', readonly reads: Record<string, FinalRead[]> }
