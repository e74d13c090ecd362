// `lifeboat proxy`: the proxy service on a host near the pools or the storage, and `lifeboat proxy --stdio`,
// the bridge the appliance's daemon runs over ssh (stdin/stdout to the service's socket; it starts nothing).
import { connect } from 'node:net'
import { join, resolve } from 'node:path'
import { defaultDataDir } from '../util/paths.ts'
import { LifeboatError } from '../util/errors.ts'
import { errorLine, runSpec } from '../cli/command.ts'
import type { CommandSpec } from '../util/args.ts'
import { untilStopped } from '../daemon/stop-signals.ts'

import { PROXY_SOCKET } from '../protocol/proxy.ts'

export const PROXY_COMMAND: CommandSpec = {
  name: 'proxy',
  summary: 'The proxy service: runs delegated jobs near the pools or the storage (--stdio: the bridge ssh runs).',
  notes:
    "On the proxy's host, systemd runs it (deploy/lifeboat-proxy.service). The appliance's daemon reaches it with ssh, which runs 'lifeboat proxy --stdio' there. " +
    "On the appliance: 'lifeboat proxy add|list|test|remove|key' register proxies ('lifeboat proxy add --help').",
  options: {
    data: { value: 'DIR', help: "the proxy's own data folder (default proxy/ in the daemon's: $LIFEBOAT_DATA/proxy, else data/proxy of the installation)" },
    socket: { value: 'PATH', help: 'the Unix socket the service listens on and --stdio connects to (default DIR/proxy.sock)' },
    stdio: { help: "bridge standard input and output to the running service's socket (what ssh runs; it starts nothing)" },
  },
}

export function defaultProxyDataDir(): string {
  return join(defaultDataDir(), 'proxy')
}

export async function main(args: string[]): Promise<void> {
  await runSpec(PROXY_COMMAND, args, async values => {
    const dataDir = resolve((values.data as string | undefined) ?? defaultProxyDataDir())
    const socketPath = resolve((values.socket as string | undefined) ?? join(dataDir, PROXY_SOCKET))
    if (values.stdio === true) return bridge(socketPath, dataDir)
    // Loaded here only: the bridge, which ssh starts for every channel, stays light.
    const { ProxyService } = await import('./service.ts')
    await untilStopped(ProxyService.start({ dataDir, socketPath }), 'proxy')
  })
}

/** stdin → the service's socket → stdout, until either side ends; the exit code says whether the service answered. */
async function bridge(socketPath: string, dataDir: string): Promise<number> {
  const socket = connect(socketPath)
  const reached = await new Promise<Error | undefined>(resolve => {
    socket.once('connect', () => resolve(undefined))
    socket.once('error', error => resolve(error))
  })
  if (reached !== undefined) {
    process.stderr.write(errorLine(proxyNotRunning(socketPath, dataDir, reached)))
    return 1
  }
  socket.on('error', () => {})
  process.stdin.pipe(socket)
  socket.pipe(process.stdout)
  await new Promise<void>(resolve => {
    socket.once('close', () => resolve())
    process.stdin.once('end', () => socket.end())
  })
  return 0
}

export function proxyNotRunning(socketPath: string, dataDir: string, cause?: unknown): LifeboatError {
  return new LifeboatError(
    'PROXY_NOT_RUNNING',
    `No Lifeboat proxy service answers on ${socketPath}. Start it with 'sudo systemctl enable --now lifeboat-proxy' (or 'lifeboat proxy --data ${dataDir}').`,
    { cause },
  )
}
