import { isIP } from 'node:net'
import { InvalidArgumentError } from '../core/errors.ts'

/** Where the gateway listens. */
export interface HttpAddress {
  readonly host: string
  readonly port: number
}

/** Loopback unless told otherwise: the gateway has no authentication of its own. */
export const DEFAULT_HTTP_HOST = '127.0.0.1'

/**
 * Parses `--http`: `HOST:PORT`, `[IPv6]:PORT`, `:PORT` or a bare `PORT` (the last two listen on
 * 127.0.0.1). Port 0 asks the system for a free one.
 * @throws InvalidArgumentError naming the accepted forms
 */
export function parseHttpAddress (text: string): HttpAddress {
  const fail = (why: string): never => {
    throw new InvalidArgumentError(`--http takes HOST:PORT, :PORT or PORT (e.g. 127.0.0.1:8080); ${JSON.stringify(text)} ${why}`)
  }
  if (typeof text !== 'string' || text === '') fail('is empty')
  const bare = /^\d+$/.test(text)
  const match = bare ? [text, undefined, '', text] : /^(?:\[([^\]]*)\]|([^:]*)):(\d+)$/.exec(text)
  if (match === null) return fail('is not one of them')
  const [, v6, name, digits] = match
  const port = Number(digits)
  if (!Number.isInteger(port) || port > 65535 || (digits ?? '').length > 5) fail('has a port outside 0..65535')
  if (v6 !== undefined) {
    if (isIP(v6) !== 6) fail('has a bracketed host that is not an IPv6 address')
    return { host: v6, port }
  }
  const host = name === undefined || name === '' ? DEFAULT_HTTP_HOST : name
  if (isIP(host) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/.test(host)) fail('has a host that is neither an IP address nor a host name')
  return { host, port }
}

/** The URL a browser opens for an address the gateway listens on. */
export function httpUrl (address: HttpAddress): string {
  const host = isIP(address.host) === 6 ? `[${address.host}]` : address.host
  return `http://${host}:${address.port}/`
}
