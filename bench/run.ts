/**
 * Entry for `npm run bench [-- <name>] [args...]`: runs the `run(args)` export of the named
 * benchmark. With no name, or with flags only (`npm run bench -- --quick`), it runs the ycsb
 * benchmark; `npm run bench -- list` lists them. A new benchmark registers below.
 */
interface Benchmark {
  run: (args: string[]) => Promise<void>
}

const benchmarks: Record<string, () => Promise<Benchmark>> = {
  ycsb: async () => await import('./ycsb/index.ts'),
  ring: async () => await import('./ring.ts'),
  kv: async () => await import('./kv.ts'),
  sync: async () => await import('./sync.ts'),
  load: async () => await import('./load.ts'),
  memory: async () => await import('./memory.ts'),
  scale: async () => await import('./scale.ts')
}

const argv = process.argv.slice(2)
const [name, ...args] = argv[0] === undefined || argv[0].startsWith('-') ? ['ycsb', ...argv] : argv
const names = Object.keys(benchmarks).join(', ')
if (name === 'list' || name === 'help') {
  console.log(`usage: npm run bench [-- <name>] [args...]   (no name: ycsb)\navailable: ${names}`)
} else {
  const load = benchmarks[name ?? 'ycsb']
  if (load === undefined) {
    console.error(`unknown benchmark '${name}'; available: ${names}`)
    process.exit(2)
  }
  await (await load()).run(args)
}
