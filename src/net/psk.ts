/**
 * Private-network keys: the swarm key file libp2p's pnet (and IPFS's swarm.key) uses, e.g.
 *
 * ```
 * /key/swarm/psk/1.0.0/
 * /base16/
 * dffb7e3135399a8b1612b2aaca1c36a3a8ac2cd0cca51ceeb2ced87d308cac6d
 * ```
 *
 * Only peers holding the same key complete a connection: every byte on the wire, the noise
 * handshake included, is XSalsa20-encrypted under it.
 */
import { generateKey } from '@libp2p/pnet'
import { InvalidArgumentError } from '../core/errors.ts'

const HEADER = '/key/swarm/psk/1.0.0/'
const ENCODING = '/base16/'
const KEY_HEX_LENGTH = 64
/** A key file is three short lines; anything much longer is not one (and is not read as text). */
const MAX_FILE_BYTES = 1024
/** What generateKey writes: the two header lines, a newline each, and the 64 hex digits. */
const GENERATED_LENGTH = HEADER.length + ENCODING.length + 2 + KEY_HEX_LENGTH

/**
 * Checks a key file's bytes and returns them in the canonical form pnet reads (LF line ends, no
 * trailing newline). @libp2p/pnet itself ignores the first two lines and throws a bare Error
 * for the rest, so the file is checked here, where the error can say what is wrong.
 *
 * @throws InvalidArgumentError naming what is wrong with the key
 * @example
 * ```ts
 * const psk = parsePsk(await readFile('swarm.key'))
 * ```
 */
export function parsePsk (bytes: Uint8Array): Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw new InvalidArgumentError('a private-network key must be the key file\'s bytes (a Uint8Array)')
  if (bytes.byteLength > MAX_FILE_BYTES) throw new InvalidArgumentError(`a private-network key file is about ${GENERATED_LENGTH} bytes, this is ${bytes.byteLength}`)
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw new InvalidArgumentError('a private-network key file is text; this is binary')
  }
  const lines = text.split(/\r\n|\n/)
  // One trailing newline is what editors add; allow it.
  if (lines.length === 4 && lines[3] === '') lines.pop()
  if (lines.length !== 3) throw new InvalidArgumentError(`a private-network key file has 3 lines (${HEADER}, ${ENCODING}, 64 hex digits), this has ${lines.length}`)
  const [header, encoding, key] = lines as [string, string, string]
  if (header !== HEADER) throw new InvalidArgumentError(`a private-network key file starts with ${HEADER}, this starts with ${JSON.stringify(header.slice(0, 40))}`)
  if (encoding !== ENCODING) throw new InvalidArgumentError(`only ${ENCODING} private-network keys are supported, this is ${JSON.stringify(encoding.slice(0, 40))}`)
  if (!/^[0-9a-fA-F]*$/.test(key)) throw new InvalidArgumentError('a private-network key must be hex digits only')
  if (key.length !== KEY_HEX_LENGTH) throw new InvalidArgumentError(`a private-network key is ${KEY_HEX_LENGTH} hex digits (32 bytes), this has ${key.length}`)
  return new TextEncoder().encode(`${HEADER}\n${ENCODING}\n${key.toLowerCase()}`)
}

/**
 * A new random private-network key, as the bytes of a key file.
 *
 * @example
 * ```ts
 * await writeFile('swarm.key', generatePsk(), { mode: 0o600, flag: 'wx' })
 * ```
 */
export function generatePsk (): Uint8Array {
  const bytes = new Uint8Array(GENERATED_LENGTH)
  generateKey(bytes)
  return bytes
}
