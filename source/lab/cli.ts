// `lifeboat lab serve`: starts the lab and prints where it listens and how to log in, then runs until SIGINT/SIGTERM.
import { join } from 'node:path'
import { homedir } from 'node:os'
import { parseCommandArgs, runCommand, UsageError } from '../cli/command.ts'
import { startLab } from './index.ts'

const LAB_USAGE = 'usage: lifeboat lab serve [--port N] [--data DIR] [--fixture default|tiny] [--json]'

export function main(args: string[]): Promise<never> {
  return runCommand(LAB_USAGE, () => serve(args))
}

async function serve(args: string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(args, {
    port: { type: 'string' }, data: { type: 'string' }, fixture: { type: 'string' }, json: { type: 'boolean' },
    username: { type: 'string' }, password: { type: 'string' },
  })
  if (positionals[0] !== 'serve' || positionals.length > 1) throw new UsageError(LAB_USAGE)
  const port = values.port === undefined ? 0 : Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be a TCP port number, not ${values.port}`)
  if (values.fixture !== undefined && values.fixture !== 'default' && values.fixture !== 'tiny') {
    throw new UsageError(`--fixture must be default or tiny, not ${values.fixture}`)
  }
  const lab = await startLab({ dataDir: values.data ?? join(homedir(), '.lifeboat', 'lab'), port, fixture: values.fixture,
    username: values.username, password: values.password })
  const [first] = lab.pools
  if (values.json === true) {
    const pools = lab.pools.map(({ name, url, username, password, poolUuid }) => ({ name, url, username, password, poolUuid }))
    process.stdout.write(JSON.stringify({ url: first!.url, username: first!.username, password: first!.password, pools }) + '\n')
  } else {
    for (const pool of lab.pools) process.stdout.write(`lab pool "${pool.name}" listening on ${pool.url} (user ${pool.username}, password ${pool.password})\n`)
    process.stdout.write('Control plane: <url>/_sim/state. Stop with Ctrl-C.\n')
  }
  await new Promise<void>(resolve => {
    const stop = () => resolve()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  await lab.stop()
}
