// A real OpenSSH server for the proxy tests: Debian's sshd on a loopback port, with its own host key, its own
// config and an authorized_keys file the test writes (the daemon's key, restricted to the proxy bridge).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, writeFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import { requireTool } from './tools.ts'

const SSHD = '/usr/sbin/sshd'

export interface Sshd {
  port: number
  user: string
  /** The SHA256 fingerprint of its current host key. */
  fingerprint(): string
  /** Puts these lines in its authorized_keys (read at each login). */
  authorize(lines: string[]): Promise<void>
  /** Restarts it on the same port with a new host key (a reinstalled proxy, or a man in the middle). */
  changeHostKey(): Promise<void>
  log(): string
  stop(): Promise<void>
}

export async function startSshd(dir: string): Promise<Sshd> {
  if (!existsSync(SSHD)) throw new Error(`the proxy tests need OpenSSH's server (${SSHD}); install it with: apt-get install -y openssh-server (npm test does it when run as root)`)
  requireTool('ssh', 'openssh-client')
  await mkdir(dir, { recursive: true, mode: 0o700 })
  // Debian's sshd wants its privilege separation folder (systemd's RuntimeDirectory makes it on a real host).
  if (process.getuid?.() === 0) await mkdir('/run/sshd', { recursive: true, mode: 0o755 })
  const port = await freePort()
  const user = userInfo().username
  const hostKey = join(dir, 'host_ed25519')
  const authorizedKeys = join(dir, 'authorized_keys')
  await writeFile(authorizedKeys, '', { mode: 0o600 })
  const newHostKey = async () => {
    await rm(hostKey, { force: true })
    await rm(`${hostKey}.pub`, { force: true })
    const made = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey])
    if (made.status !== 0) throw new Error(`ssh-keygen failed: ${made.stderr}`)
  }
  await newHostKey()
  const config = join(dir, 'sshd_config')
  await writeFile(
    config,
    [
      `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${hostKey}`, `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorizedKeys}`, 'StrictModes no', 'PubkeyAuthentication yes', 'PasswordAuthentication no',
      'KbdInteractiveAuthentication no', 'UsePAM no', 'PermitRootLogin prohibit-password', `AllowUsers ${user}`,
      'PrintMotd no', 'LogLevel VERBOSE', '',
    ].join('\n'),
    { mode: 0o600 },
  )
  let child: ChildProcess
  let log = ''
  const start = async () => {
    child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] })
    child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()))
    const deadline = Date.now() + 30_000
    while (!log.includes(`Server listening on 127.0.0.1 port ${port}`)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`sshd did not start: ${log}`)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill('SIGTERM')
    await exited
  }
  await start()
  return {
    port,
    user,
    fingerprint: () => {
      const listed = spawnSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${hostKey}.pub`], { encoding: 'utf8' })
      return /SHA256:\S+/.exec(listed.stdout)![0]
    },
    authorize: lines => writeFile(authorizedKeys, lines.map(line => `${line}\n`).join(''), { mode: 0o600 }),
    changeHostKey: async () => {
      await stop()
      await newHostKey()
      await start()
    },
    log: () => log,
    stop,
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}
