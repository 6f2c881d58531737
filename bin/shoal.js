#!/usr/bin/env node
// The `shoal` command. In a checkout run the TypeScript source directly (Node 24 strips types);
// an installed package runs the JavaScript built into dist/ by `npm run build` (its `prepare`).
import { existsSync } from 'node:fs'

// A long-running node keeps V8's young generation small: by default it grows to 64 MB and more
// under a burst of allocation (the start-up tree check, an anti-entropy exchange) and stays there,
// most of an idle node's memory. The limit can only be set when the process starts, so `start`
// re-executes itself with it (execve keeps the pid, stdio and signals), unless it was given one.
const SEMI_SPACE_FLAG = '--max-semi-space-size'
if (process.argv[2] === 'start' && typeof process.execve === 'function' &&
    !process.execArgv.some(a => a.startsWith(SEMI_SPACE_FLAG)) && !(process.env.NODE_OPTIONS ?? '').includes(SEMI_SPACE_FLAG)) {
  process.execve(process.execPath, [process.execPath, `${SEMI_SPACE_FLAG}=8`, ...process.execArgv, ...process.argv.slice(1)], process.env)
}

const source = new URL('../src/cli/main.ts', import.meta.url)
const built = new URL('../dist/cli/main.js', import.meta.url)
const entry = existsSync(source) && process.features.typescript ? source : built
if (entry === built && !existsSync(built)) {
  console.error('shoal: dist/ is missing: run `npm run build` (npm ci does it), or use Node 22.18+ in a checkout')
  process.exit(1)
}
const { main } = await import(entry.href)
process.exitCode = await main(process.argv.slice(2))
