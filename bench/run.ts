/**
 * Entry for `npm run bench -- <name> [args...]`: runs the `run(args)` export of
 * bench/<name>.ts. With no name it lists the benchmarks. A new benchmark registers below.
 */
interface Benchmark {
  run: (args: string[]) => Promise<void>
}

const benchmarks: Record<string, () => Promise<Benchmark>> = {
  ring: async () => await import('./ring.ts'),
  kv: async () => await import('./kv.ts'),
  sync: async () => await import('./sync.ts'),
  load: async () => await import('./load.ts')
}

const [name, ...args] = process.argv.slice(2)
const names = Object.keys(benchmarks).join(', ')
if (name === undefined) {
  console.log(`usage: npm run bench -- <name> [args...]\navailable: ${names}`)
} else {
  const load = benchmarks[name]
  if (load === undefined) {
    console.error(`unknown benchmark '${name}'; available: ${names}`)
    process.exit(2)
  }
  await (await load()).run(args)
}
