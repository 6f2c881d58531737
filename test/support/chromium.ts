import { execFile } from 'node:child_process'
import { access } from 'node:fs/promises'
import { chromium } from 'playwright-core'
import type { Browser } from 'playwright-core'

/** Debian's chromium package, which playwright-core drives (it brings no browser of its own). */
export const CHROMIUM = '/usr/bin/chromium'

/**
 * Headless Chromium for a browser test. Installs the Debian `chromium` package when it is
 * missing and this process is root; otherwise skips the test (`ctx.skip()`) saying why.
 */
export async function launchChromium (ctx: Mocha.Context): Promise<Browser> {
  if (!await exists(CHROMIUM)) {
    if (process.getuid?.() !== 0) {
      console.warn(`    skipped: ${CHROMIUM} is missing and installing it needs root (apt-get install chromium)`)
      ctx.skip()
    }
    ctx.timeout(Math.max(ctx.timeout(), 900_000))
    try {
      await run('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'])
    } catch (err) {
      console.warn(`    skipped: apt-get install chromium failed: ${(err as Error).message.split('\n')[0] ?? ''}`)
      ctx.skip()
    }
  }
  return await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Chromium refuses its sandbox to root; the page is our own, on loopback.
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : []
  })
}

async function exists (path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}

async function run (file: string, args: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile(file, args, { timeout: 840_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }, (err, _stdout, stderr) => {
      if (err === null) resolve()
      else reject(new Error(`${file} ${args.join(' ')}: ${stderr.trim() || err.message}`))
    })
  })
}
