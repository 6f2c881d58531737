#!/usr/bin/env node
// The `shoal` command. In a checkout run the TypeScript source directly (Node 24 strips types);
// an installed package runs the JavaScript built into dist/ by `npm run build` (its `prepare`).
import { existsSync } from 'node:fs'

const source = new URL('../src/cli/main.ts', import.meta.url)
const built = new URL('../dist/cli/main.js', import.meta.url)
const entry = existsSync(source) && process.features.typescript ? source : built
if (entry === built && !existsSync(built)) {
  console.error('shoal: dist/ is missing: run `npm run build` (npm ci does it), or use Node 22.18+ in a checkout')
  process.exit(1)
}
const { main } = await import(entry.href)
process.exitCode = await main(process.argv.slice(2))
