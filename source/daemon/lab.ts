// `lifeboat lab [--data DIR]`: the embedded default a new user runs first: the lab's simulated pools, a
// daemon configured with them and a local remote named "lab", then the TUI on it (or, without a
// terminal, how to drive it with the CLI). Quitting the TUI stops the daemon and the lab.
import { createWriteStream } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { defaultDataDir } from '../util/paths.ts'
import { DaemonClient } from '../client/index.ts'
import { runSpec } from '../cli/command.ts'
import type { CommandSpec } from '../util/args.ts'
import { Daemon, untilStopped } from './index.ts'

export const LAB_COMMAND: CommandSpec = {
  name: 'lab',
  summary: 'The lab pools, a daemon and the TUI, ready to back up.',
  notes: 'Starts the lab pools (data in DIR/lab), a daemon (state in DIR) and the local remote "lab" (DIR/lab-remote), then the TUI on them; quitting it stops everything. Without a terminal, or with --no-tui, runs until Ctrl-C.',
  options: {
    data: { value: 'DIR', help: 'where the lab, the daemon and the remote keep their data (default $LIFEBOAT_DATA, else data/)' },
    socket: { value: 'PATH', help: "the daemon's socket (default DIR/lifeboat.sock)" },
    'no-tui': { help: 'no terminal UI: print how to drive the lab with the CLI, and run until Ctrl-C' },
  },
}

export async function main(args: string[]): Promise<void> {
  await runSpec(LAB_COMMAND, args, async rawValues => {
    const values = rawValues as { data?: string; socket?: string; 'no-tui'?: boolean }
    const { startLab } = await import('../lab/index.ts')
    const dataDir = resolve(values.data ?? defaultDataDir())
    const remoteDir = join(dataDir, 'lab-remote')
    await mkdir(remoteDir, { recursive: true })
    const lab = await startLab({ dataDir: join(dataDir, 'lab') })
    const withTui = process.stdin.isTTY === true && process.stdout.isTTY === true && values['no-tui'] !== true
    // The TUI owns the terminal: the daemon's log goes to a file meanwhile.
    const logFile = withTui ? createWriteStream(join(dataDir, 'daemon.log'), { flags: 'a' }) : undefined
    const daemon = await Daemon.start({ dataDir, ...(values.socket !== undefined && { socketPath: values.socket }), ...(logFile !== undefined && { log: (line: string) => void logFile.write(`${line}\n`) }) })
    const client = await DaemonClient.connect(daemon.socketPath)
    try {
      // Lab ports change at each start: pools are added again (same uuid, new URL).
      for (const pool of lab.pools) await client.call('pool.add', { url: pool.url, username: pool.username, password: pool.password })
      const remotes = await client.call('remote.list')
      if (!remotes.some(remote => remote.name === 'lab')) await client.call('remote.add', { name: 'lab', url: `file://${remoteDir}` })
    } finally {
      client.close()
    }
    if (withTui) {
      process.env.NODE_ENV ??= 'production'
      const { runTui } = await import('../tui/main.tsx')
      const code = await runTui({ socket: daemon.socketPath, readonly: false, lab: true })
      await daemon.stop('the lab was closed')
      await lab.stop()
      logFile?.end()
      return code
    }
    const socket = daemon.socketPath === join(dataDir, 'lifeboat.sock') && values.data === undefined ? '' : ` --socket ${daemon.socketPath}`
    process.stdout.write(`The lab is running: ${lab.pools.map(p => `${p.name} (${p.url})`).join(', ')}, remote "lab" in ${remoteDir}.
No terminal here (or --no-tui): drive the daemon with the CLI from another terminal, or run \`npx lifeboat${socket}\` for the TUI (from this folder):

  npx lifeboat vm list${socket}
  npx lifeboat job create --name first --mode delta --pool ${lab.pools[0]!.poolUuid} --remote lab --retention 3${socket}
  npx lifeboat job run first --wait${socket}
  npx lifeboat backup list --remote lab${socket}
  npx lifeboat logs --follow${socket}

Ctrl-C stops the daemon and the lab.
`)
    await untilStopped(daemon)
    await lab.stop()
  })
}
