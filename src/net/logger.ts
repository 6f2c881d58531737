/**
 * libp2p's logging when nobody is listening: libp2p builds its loggers (each three `debug`
 * instances, one asking whether stderr is a terminal) per connection and per stream, several per
 * request, even with logging off. Without `DEBUG` in the environment Shoal hands libp2p loggers
 * that do nothing and cost nothing; with it, libp2p's own, so `DEBUG=libp2p:*` works as usual.
 */
import type { ComponentLogger, Logger } from '@libp2p/interface'

const ignore = (): void => {}

const SILENT: Logger = Object.assign((_formatter: unknown, ..._args: unknown[]): void => {}, {
  error: ignore,
  trace: ignore,
  enabled: false,
  newScope: (): Logger => SILENT
})

/** A ComponentLogger whose loggers log nothing. */
export const silentLogger: ComponentLogger = { forComponent: () => SILENT }

/** The logger to give libp2p: silent unless `DEBUG` asks for logs. */
export function libp2pLogger (env: NodeJS.ProcessEnv = process.env): ComponentLogger | undefined {
  return env.DEBUG === undefined || env.DEBUG === '' ? silentLogger : undefined
}
