// The daemon's ssh to its proxies: the system's `ssh` with the daemon's own key (made with ssh-keygen in its
// data folder at first use), the host keys pinned in a known_hosts file of its own (never the user's),
// and a channel that carries the proxy's JSON-RPC over the ssh process's stdin and stdout.
import { spawn, type ChildProcess } from 'node:child_process'
import { chmod, mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { Duplex } from 'node:stream'
import { LifeboatError } from '../util/errors.ts'
import { RpcClient } from '../client/index.ts'
import type { ProxyMethods } from '../protocol/proxy.ts'

/** The command the channel asks for on the proxy: the README's install. An authorized_keys `command=` forces it anyway. */
export const BRIDGE_COMMAND = '/usr/bin/node /opt/lifeboat/bin/lifeboat.js proxy --stdio --data /var/lib/lifeboat-proxy'

const CONNECT_TIMEOUT_S = 10
const KEYSCAN_TIMEOUT_S = 10
/** A channel whose proxy says nothing for 3 × 15 s is taken for dropped (a host gone, a cable pulled). */
const ALIVE_INTERVAL_S = 15
/** The stderr kept of an ssh process (what the failure says). */
const STDERR_BYTES = 8192
/** Host key types in the order a pinned fingerprint is named by. */
const KEY_TYPES = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa']

export interface SshTarget {
  /** The proxy's name: its host keys are pinned under an alias made of it. */
  name: string
  user: string
  host: string
  port: number
}

export interface HostKey {
  type: string
  key: string
  /** SHA256:… as ssh-keygen -l prints it. */
  fingerprint: string
}

export class SshKeys {
  readonly dir: string
  readonly privateKey: string
  readonly knownHosts: string

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'ssh')
    this.privateKey = join(this.dir, 'id_ed25519')
    this.knownHosts = join(this.dir, 'known_hosts')
  }

  /** The daemon's public key line, the key pair made first if there is none (private key mode 0600). */
  async publicKey(): Promise<string> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    const exists = await stat(this.privateKey).then(() => true, () => false)
    if (!exists) {
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `lifeboat-daemon@${hostname()}`, '-f', this.privateKey])
    }
    await chmod(this.privateKey, 0o600)
    return (await readFile(`${this.privateKey}.pub`, 'utf8')).trim()
  }

  /** The host keys a proxy's sshd offers now (ssh-keyscan), with their fingerprints, the preferred type first. */
  async scan(target: SshTarget): Promise<HostKey[]> {
    let output: string
    try {
      output = await run('ssh-keyscan', ['-T', String(KEYSCAN_TIMEOUT_S), '-p', String(target.port), target.host])
    } catch (error) {
      throw unreachable(target, (error as Error).message)
    }
    const keys: HostKey[] = []
    for (const line of output.split('\n')) {
      const [, type, key] = line.trim().split(/\s+/)
      if (type === undefined || key === undefined || line.startsWith('#')) continue
      keys.push({ type, key, fingerprint: await fingerprint(type, key) })
    }
    if (keys.length === 0) throw unreachable(target, 'ssh-keyscan got no host key')
    const rank = (type: string) => (KEY_TYPES.indexOf(type) + KEY_TYPES.length + 1) % (KEY_TYPES.length + 1)
    return keys.sort((a, b) => rank(a.type) - rank(b.type))
  }

  /** Pins these keys for the proxy (replacing what was pinned for it). */
  async pin(name: string, keys: HostKey[]): Promise<void> {
    await this.#rewrite(lines => [...lines.filter(line => !line.startsWith(`${alias(name)} `)), ...keys.map(key => `${alias(name)} ${key.type} ${key.key}`)])
  }

  async unpin(name: string): Promise<void> {
    await this.#rewrite(lines => lines.filter(line => !line.startsWith(`${alias(name)} `)))
  }

  async pinned(name: string): Promise<HostKey[]> {
    const text = await readFile(this.knownHosts, 'utf8').catch(() => '')
    const keys: HostKey[] = []
    for (const line of text.split('\n')) {
      const [who, type, key] = line.split(' ')
      if (who === alias(name) && type !== undefined && key !== undefined) keys.push({ type, key, fingerprint: await fingerprint(type, key) })
    }
    return keys
  }

  async #rewrite(change: (lines: string[]) => string[]): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    const lines = (await readFile(this.knownHosts, 'utf8').catch(() => '')).split('\n').filter(line => line !== '')
    const temporary = `${this.knownHosts}.${process.pid}.tmp`
    await writeFile(temporary, change(lines).map(line => `${line}\n`).join(''), { mode: 0o600 })
    await rename(temporary, this.knownHosts).catch(async error => {
      await unlink(temporary).catch(() => {})
      throw error
    })
  }

  /** ssh's arguments: this key only, the pinned host keys only, no agent, no forwarding, no escape character, no user config. */
  sshArgs(target: SshTarget): string[] {
    const options = {
      BatchMode: 'yes',
      IdentitiesOnly: 'yes',
      IdentityFile: this.privateKey,
      StrictHostKeyChecking: 'yes',
      UserKnownHostsFile: this.knownHosts,
      GlobalKnownHostsFile: '/dev/null',
      HostKeyAlias: alias(target.name),
      UpdateHostKeys: 'no',
      ConnectTimeout: String(CONNECT_TIMEOUT_S),
      ServerAliveInterval: String(ALIVE_INTERVAL_S),
      ServerAliveCountMax: '3',
      ForwardAgent: 'no',
      ClearAllForwardings: 'yes',
      ControlMaster: 'no',
      ControlPath: 'none',
      LogLevel: 'ERROR',
    }
    return ['-F', '/dev/null', '-T', '-e', 'none', ...Object.entries(options).flatMap(([key, value]) => ['-o', `${key}=${value}`]), '-p', String(target.port), '-l', target.user, '--', target.host, BRIDGE_COMMAND]
  }
}

/** One ssh process to a proxy: its client, and what ssh said on stderr when it ends. */
export class SshChannel {
  readonly client: RpcClient<ProxyMethods>
  readonly exited: Promise<{ code: number | null; stderr: string }>

  constructor(
    readonly target: SshTarget,
    private readonly child: ChildProcess,
  ) {
    let stderr = ''
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_BYTES)
    })
    this.exited = new Promise(resolve => child.once('close', code => resolve({ code, stderr })))
    child.once('error', () => {})
    const stream = Duplex.from({ readable: child.stdout!, writable: child.stdin! })
    child.once('close', () => stream.destroy())
    this.client = new RpcClient<ProxyMethods>(stream, {
      name: `the proxy "${target.name}"`,
      unreachable: () => new LifeboatError('PROXY_DISCONNECTED', `The ssh channel to the proxy "${target.name}" is closed.`),
      lost: () => new LifeboatError('PROXY_DISCONNECTED', `The ssh channel to the proxy "${target.name}" (${target.host}:${target.port}) closed before the proxy answered.`),
      timeout: (method, ms) => new LifeboatError('PROXY_TIMEOUT', `The proxy "${target.name}" did not answer ${method} within ${ms} ms over ssh; check 'lifeboat proxy test ${target.name}'.`),
    })
  }

  static open(keys: SshKeys, target: SshTarget): SshChannel {
    return new SshChannel(target, spawn('ssh', keys.sshArgs(target), { stdio: ['pipe', 'pipe', 'pipe'] }))
  }

  close(): void {
    this.client.close()
    this.child.kill('SIGTERM')
  }
}

/** The pinned-key alias a proxy's host keys are kept under (so two proxies on one host, or a renamed host, never mix). */
function alias(name: string): string {
  return `lifeboat-proxy-${name}`
}

async function fingerprint(type: string, key: string): Promise<string> {
  const output = await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', '-'], `${type} ${key}\n`)
  const found = /SHA256:[A-Za-z0-9+/=]+/.exec(output)
  if (found === null) throw new LifeboatError('SSH_KEYGEN_FAILED', `ssh-keygen could not read a host key of type ${type}: ${output.trim().slice(0, 200)}`)
  return found[0]
}

export function unreachable(target: SshTarget, reason: string): LifeboatError {
  return new LifeboatError('PROXY_UNREACHABLE', `No ssh server answers at ${target.host}:${target.port} for the proxy "${target.name}" (${reason.trim().split('\n').at(-1)}); check the host and port, that sshd runs there and that no firewall is in the way.`)
}

/** Runs a program to its end; its stdout, or an error with its stderr (a missing program: the package to install). */
function run(command: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')))
    child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_BYTES)))
    child.stdin?.end(input)
    child.once('error', error =>
      reject((error as NodeJS.ErrnoException).code === 'ENOENT' ? new LifeboatError('SSH_NOT_INSTALLED', `${command} is not installed; proxies are reached with the system's ssh: apt-get install openssh-client.`) : error),
    )
    child.once('close', code => (code === 0 ? resolve(stdout) : reject(new Error(stderr.trim() === '' ? `${command} exited ${code}` : stderr))))
  })
}
