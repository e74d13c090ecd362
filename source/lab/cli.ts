// `lifeboat lab serve`: starts the lab and prints where it listens and how to log in, then runs until SIGINT/SIGTERM.
// Self-contained (the lab depends on formats/, lab/storage/ and util/ only); exit codes follow the CLI's: 0, 1, 2 for usage.
import { join } from 'node:path'
import { describeError } from '../util/errors.ts'
import { UsageError, helpText, parseCommandLine, synopsis, type CommandSpec } from '../util/args.ts'
import { terminalSafeLine } from '../util/terminal-text.ts'
import { defaultDataDir } from '../util/paths.ts'
import { FIXTURE_NAMES, startLab, type FixtureName } from './index.ts'

export const LAB_SERVE_COMMAND: CommandSpec = {
  name: 'lab serve',
  summary: 'The XAPI simulator alone; prints its URLs and credentials.',
  notes: 'Runs until Ctrl-C (or SIGTERM).',
  options: {
    port: { value: 'N', help: "the first pool's TCP port, the next pools on the following ones (default: any free port)" },
    data: { value: 'DIR', help: "the lab's database and disks (default data/lab)" },
    fixture: { value: FIXTURE_NAMES.join('|'), help: 'the pools and VMs to create in a new DIR (default: default)' },
    json: { help: 'print one line {"url", "username", "password", "pools"} instead' },
    username: { value: 'U', help: 'the user the lab accepts (default root)' },
    password: { value: 'P', help: 'the password the lab accepts (default lifeboat)' },
  },
}

/** `args` begin with 'serve'; the lines and exit codes are the CLI's, written here since the lab imports no cli/. */
export async function main(args: string[]): Promise<void> {
  try {
    const parsed = parseCommandLine(LAB_SERVE_COMMAND, args.slice(1))
    if (parsed.help) process.stdout.write(helpText(LAB_SERVE_COMMAND))
    else await serve(options(parsed.values))
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`lifeboat: ${error.message}\nusage: ${synopsis(LAB_SERVE_COMMAND)}\n`)
      process.exitCode = 2
    } else {
      const { code, message } = describeError(error)
      process.stderr.write(`lifeboat: ${code}: ${terminalSafeLine(message)}\n`)
      process.exitCode = 1
    }
  }
}

interface ServeOptions { port: number; data: string | undefined; fixture: FixtureName | undefined; json: boolean; username?: string; password?: string }

function options(values: Record<string, unknown>): ServeOptions {
  const text = (name: string) => values[name] as string | undefined
  const port = text('port') === undefined ? 0 : Number(text('port'))
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be a TCP port number, not ${text('port')}`)
  const fixture = text('fixture') as FixtureName | undefined
  if (fixture !== undefined && !FIXTURE_NAMES.includes(fixture)) throw new UsageError(`--fixture must be one of ${FIXTURE_NAMES.join(', ')}, not ${fixture}`)
  return { port, data: text('data'), fixture, json: values.json === true, username: text('username'), password: text('password') }
}

async function serve(options: ServeOptions): Promise<void> {
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
