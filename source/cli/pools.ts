// `lifeboat pool add|list|remove`, `vm list` and `sr list`: the pools the daemon is connected to and what they hold.
import { readFile } from 'node:fs/promises'
import { UsageError } from './command.ts'
import { formatBytes, table } from './output.ts'
import { stringOption, type CommandContext, type Subcommand } from './index.ts'

/**
 * A secret from --NAME-env VAR, --NAME-file FILE or, where the command offers it, --NAME-stdin (never from
 * the command line itself, where ps and the shell history see it).
 */
export async function secretOption(context: CommandContext, name: string, { required = true, stdin: offered = false } = {}): Promise<string | undefined> {
  const variable = stringOption(context, `${name}-env`)
  const file = stringOption(context, `${name}-file`)
  const stdin = offered && context.values[`${name}-stdin`] === true
  const given = [variable, file, stdin || undefined].filter(source => source !== undefined).length
  if (given === 0 && !required) return undefined
  if (given !== 1) throw new UsageError(`give the ${name} with exactly one of --${name}-env VAR or --${name}-file FILE${offered ? ` or --${name}-stdin` : ''} (never on the command line)`)
  if (variable !== undefined) {
    const value = process.env[variable]
    if (value === undefined) throw new UsageError(`the environment variable ${variable} is not set`)
    return value
  }
  // One trailing newline is what editors and `echo` add; it is not part of the password.
  const text = stdin ? await readStdin() : await readFile(file!, 'utf8')
  return text.replace(/\r?\n$/, '')
}

async function readStdin(): Promise<string> {
  let text = ''
  for await (const data of process.stdin) text += String(data)
  return text
}

export const POOL_COMMANDS: Record<string, Record<string, Subcommand>> = {
  pool: {
    add: {
      positionals: ['URL'],
      summary: 'Connects the daemon to a pool.',
      notes: 'URL: the pool master (https://host). The password is read from a variable or a file, never the command line, and is never shown again.',
      options: {
        user: { value: 'U', required: true, help: 'the XAPI user (root, or a user with the pool-admin role)' },
        'password-env': { value: 'VAR', help: 'read the password from this environment variable' },
        'password-file': { value: 'F', help: 'read the password from this file (one trailing newline ignored)' },
      },
      async body(context) {
        const username = stringOption(context, 'user')!
        const secret = (await secretOption(context, 'password'))!
        const pool = await (await context.client()).call('pool.add', { url: context.positionals[0]!, username, password: secret })
        context.print(pool, () => `pool "${pool.name}" (${pool.id}) added: ${pool.status}, ${pool.hosts} host(s)\n`)
      },
    },
    list: {
      summary: 'Lists the pools the daemon connects to, with their status.',
      async body(context) {
        const pools = await (await context.client()).call('pool.list')
        context.print(pools, () => table(['ID', 'NAME', 'URL', 'USER', 'STATUS', 'HOSTS'], pools.map(p => [p.id, p.name, p.url, p.username, p.error === undefined ? p.status : `${p.status}: ${p.error.code}`, String(p.hosts)])) || 'no pools; add one with npx lifeboat pool add\n')
      },
    },
    remove: {
      positionals: ['ID'],
      summary: 'Disconnects a pool and forgets it.',
      notes: 'ID: its uuid, from pool list.',
      async body(context) {
        const result = await (await context.client()).call('pool.remove', { id: context.positionals[0]! })
        context.print(result, () => `pool ${context.positionals[0]} removed\n`)
      },
    },
  },
  vm: {
    list: {
      summary: "Lists the connected pools' VMs.",
      options: { pool: { value: 'P', help: "only this pool's (uuid or name)" } },
      async body(context) {
        const pool = stringOption(context, 'pool')
        const vms = await (await context.client()).call('vm.list', pool === undefined ? {} : { pool })
        context.print(vms, () => table(['UUID', 'NAME', 'POOL', 'POWER', 'DISKS', 'SIZE', 'TAGS'], vms.map(vm => [vm.uuid, vm.name, vm.poolName, vm.powerState, String(vm.disks.length), formatBytes(vm.disks.reduce((sum, d) => sum + d.size, 0)), vm.tags.join(',')])) || 'no VMs\n')
      },
    },
  },
  sr: {
    list: {
      summary: "Lists the connected pools' SRs (restore and replication targets).",
      options: { pool: { value: 'P', help: "only this pool's (uuid or name)" } },
      async body(context) {
        const pool = stringOption(context, 'pool')
        const srs = await (await context.client()).call('sr.list', pool === undefined ? {} : { pool })
        context.print(srs, () => table(['UUID', 'NAME', 'POOL', 'TYPE', 'SIZE', 'FREE', 'SHARED'], srs.map(sr => [sr.uuid, sr.name, sr.poolName, sr.type, formatBytes(sr.size), formatBytes(sr.free), sr.shared ? 'yes' : 'no'])) || 'no SRs\n')
      },
    },
  },
}
