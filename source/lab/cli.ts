// `lifeboat lab serve`: starts the lab and prints where it listens and how to log in, then runs until SIGINT/SIGTERM.
// Self-contained (the lab depends on formats/, lab/storage/ and util/ only); exit codes follow the CLI's: 0, 1, 2 for usage.
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { errorCode } from '../util/errors.ts'
import { defaultDataDir } from '../util/paths.ts'
import { FIXTURE_NAMES, startLab, type FixtureName } from './index.ts'

const LAB_USAGE = 'usage: lifeboat lab serve [--port N] [--data DIR] [--fixture default|tiny|pair] [--json]'

class LabUsageError extends Error {}

export async function main(args: string[]): Promise<void> {
  try {
    await serve(args)
  } catch (error) {
    if (error instanceof LabUsageError) {
      process.stderr.write(`lifeboat: ${error.message}\n${LAB_USAGE}\n`)
      process.exitCode = 2
    } else {
      process.stderr.write(`lifeboat: ${errorCode(error)}: ${error instanceof Error ? error.message : String(error)}\n`)
      process.exitCode = 1
    }
  }
}

function parse(args: string[]): { port: number; data: string | undefined; fixture: FixtureName | undefined; json: boolean; username?: string; password?: string } {
  let parsed
  try {
    parsed = parseArgs({ args, allowPositionals: true, strict: true, options: {
      port: { type: 'string' }, data: { type: 'string' }, fixture: { type: 'string' }, json: { type: 'boolean' },
      username: { type: 'string' }, password: { type: 'string' },
    } })
  } catch (error) {
    throw new LabUsageError((error as Error).message)
  }
  const { values, positionals } = parsed
  if (positionals[0] !== 'serve' || positionals.length > 1) throw new LabUsageError('the lab has one command: serve')
  const port = values.port === undefined ? 0 : Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new LabUsageError(`--port must be a TCP port number, not ${values.port}`)
  const fixture = values.fixture as FixtureName | undefined
  if (fixture !== undefined && !FIXTURE_NAMES.includes(fixture)) {
    throw new LabUsageError(`--fixture must be one of ${FIXTURE_NAMES.join(', ')}, not ${values.fixture}`)
  }
  return { port, data: values.data, fixture, json: values.json === true, username: values.username, password: values.password }
}

async function serve(args: string[]): Promise<void> {
  const options = parse(args)
  const lab = await startLab({ dataDir: options.data ?? join(defaultDataDir(), 'lab'), port: options.port, fixture: options.fixture,
    username: options.username, password: options.password })
  const [first] = lab.pools
  if (options.json) {
    const pools = lab.pools.map(({ name, url, username, password, poolUuid }) => ({ name, url, username, password, poolUuid }))
    process.stdout.write(JSON.stringify({ url: first!.url, username: first!.username, password: first!.password, pools }) + '\n')
  } else {
    for (const pool of lab.pools) process.stdout.write(`lab pool "${pool.name}" listening on ${pool.url} (user ${pool.username}, password ${pool.password})\n`)
    process.stdout.write('Control plane: <url>/_sim/state. Stop with Ctrl-C.\n')
  }
  await new Promise<void>(resolve => {
    process.once('SIGINT', () => resolve())
    process.once('SIGTERM', () => resolve())
  })
  await lab.stop()
}
