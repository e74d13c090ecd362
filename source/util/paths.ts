// Where Lifeboat keeps its state when no --data is given: the repository's data/ folder (or $LIFEBOAT_DATA),
// with one subfolder per part (the daemon's state, run logs, the lab, the lab's local remote).
import { fileURLToPath } from 'node:url'
import { resolve } from 'node:path'

export function defaultDataDir(): string {
  const fromEnv = process.env.LIFEBOAT_DATA
  return fromEnv !== undefined && fromEnv !== '' ? resolve(fromEnv) : fileURLToPath(new URL('../../data', import.meta.url))
}
