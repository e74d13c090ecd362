// The proxies this daemon delegates runs to: registered by name with an ssh:// URL, their host keys pinned
// at `proxy add` (a key that changes later is refused, both fingerprints named), reached over the system's
// ssh with the daemon's own key; a proxy of another Lifeboat version is refused with both versions named.
import { LifeboatError } from '../util/errors.ts'
import { parseProxyUrl, type Proxy, type ProxyMethods, type ProxyServiceInfo, type ProxyTestResult } from '../protocol/proxy.ts'
import type { RpcClient } from '../client/index.ts'
import type { ProxyAddResult, ProxyKey } from '../protocol/methods.ts'
import type { DaemonState, StoredProxy } from './state.ts'
import { BRIDGE_COMMAND, SshChannel, SshKeys, type HostKey, type SshTarget } from './ssh.ts'

/** Generous: ssh connects in ConnectTimeout (10 s), then the proxy host starts Node for the bridge. */
const HELLO_TIMEOUT_MS = 60_000
const PING_SAMPLES = 5

export interface OpenChannel {
  channel: SshChannel
  info: ProxyServiceInfo
  connectMs: number
}

export class Proxies {
  readonly keys: SshKeys
  /** The channel of each proxy's remotes (`remote add --proxy`), shared by them, opened again once it closed. */
  readonly #storage = new Map<string, Promise<SshChannel>>()

  constructor(
    private readonly state: DaemonState,
    dataDir: string,
    private readonly version: string,
    private readonly log: (line: string) => void,
  ) {
    this.keys = new SshKeys(dataDir)
  }

  list(): Proxy[] {
    return this.state.data.proxies.map(({ name, url, fingerprint, addedAt }) => ({ name, url, fingerprint, addedAt }))
  }

  get(name: string): StoredProxy {
    const stored = this.state.data.proxies.find(proxy => proxy.name === name)
    if (stored === undefined) throw new LifeboatError('PROXY_NOT_FOUND', `No proxy is named "${name}"; 'npx lifeboat proxy list' shows them.`)
    return stored
  }

  /** The daemon's public key, and the authorized_keys line that lets it run the proxy's bridge and nothing else. */
  async key(): Promise<ProxyKey> {
    const publicKey = await this.keys.publicKey()
    return { publicKey, authorizedKeysLine: `restrict,command="${BRIDGE_COMMAND}" ${publicKey}` }
  }

  /**
   * Registers a proxy: its host keys pinned as its sshd offers them now (or refused when `fingerprint` is given
   * and none has it), then tested; a failing test is reported with the proxy kept (its key may not be authorized yet).
   */
  async add(name: string, url: string, options: { fingerprint?: string; replace?: boolean } = {}): Promise<ProxyAddResult> {
    const existing = this.state.data.proxies.find(proxy => proxy.name === name)
    if (existing !== undefined && options.replace !== true) {
      throw new LifeboatError('PROXY_EXISTS', `A proxy is already named "${name}" (${existing.url}); choose another name, or give --replace to pin its host key again.`)
    }
    const target = { name, ...parseProxyUrl(url) }
    const key = await this.key()
    const offered = await this.keys.scan(target)
    const pinned = options.fingerprint === undefined ? offered[0]! : offered.find(hostKey => hostKey.fingerprint === options.fingerprint)
    if (pinned === undefined) {
      throw new LifeboatError('HOST_KEY_MISMATCH', `The ssh server at ${target.host}:${target.port} offers ${offered.map(hostKey => hostKey.fingerprint).join(', ')}, not ${options.fingerprint}: this is not the host you checked. Nothing was added; compare with 'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub' on the proxy's console.`)
    }
    await this.keys.pin(name, options.fingerprint === undefined ? offered : [pinned])
    const stored: StoredProxy = { name, url, fingerprint: pinned.fingerprint, addedAt: Date.now() }
    await this.state.update(data => void (data.proxies = [...data.proxies.filter(proxy => proxy.name !== name), stored]))
    this.log(`proxy "${name}" (${url}) added, host key ${pinned.fingerprint} pinned`)
    const proxy = this.list().find(candidate => candidate.name === name)!
    try {
      return { proxy, ...key, test: await this.test(name) }
    } catch (error) {
      const { code, message } = error as LifeboatError
      return { proxy, ...key, problem: { code: code ?? 'UNKNOWN', message } }
    }
  }

  /** Connects, checks the version, measures the latency, closes. */
  async test(name: string): Promise<ProxyTestResult> {
    const stored = this.get(name)
    const { channel, info, connectMs } = await this.connect(name)
    try {
      const samples: number[] = []
      for (let i = 0; i < PING_SAMPLES; i++) {
        const start = performance.now()
        await channel.client.call('ping')
        samples.push(performance.now() - start)
      }
      samples.sort((a, b) => a - b)
      const latencyMs = Math.round(samples[Math.floor(samples.length / 2)]! * 100) / 100
      return { name, url: stored.url, fingerprint: stored.fingerprint, version: info.version, hostname: info.hostname, connectMs, latencyMs }
    } finally {
      channel.close()
    }
  }

  async remove(name: string, usedBy: string[], remotes: string[] = []): Promise<void> {
    this.get(name)
    if (usedBy.length > 0) throw new LifeboatError('PROXY_IN_USE', `The proxy "${name}" runs the job(s) ${usedBy.map(job => `"${job}"`).join(', ')}; change or delete them first.`)
    if (remotes.length > 0) throw new LifeboatError('PROXY_IN_USE', `The remote(s) ${remotes.map(remote => `"${remote}"`).join(', ')} live on the proxy "${name}"; remove them first ('npx lifeboat remote remove NAME': their backups stay on the proxy's storage).`)
    await this.keys.unpin(name)
    await this.state.update(data => void (data.proxies = data.proxies.filter(proxy => proxy.name !== name)))
    this.log(`proxy "${name}" removed`)
  }

  /** The open channel the remotes on this proxy are worked on through (a new one once the last closed). */
  async storageChannel(name: string): Promise<RpcClient<ProxyMethods>> {
    let opening = this.#storage.get(name)
    const open = await opening?.catch(() => undefined)
    if (open === undefined || !open.client.connected) {
      if (open !== undefined) open.close()
      opening = this.connect(name).then(({ channel }) => channel)
      this.#storage.set(name, opening)
      opening.catch(() => this.#storage.delete(name))
    }
    return (await opening!).client
  }

  /** Closes the remotes' channels (the daemon stops). */
  closeChannels(): void {
    for (const opening of this.#storage.values()) void opening.then(channel => channel.close(), () => {})
    this.#storage.clear()
  }

  /** An ssh channel to the proxy whose service answered and runs this daemon's version; every failure says what to do. */
  async connect(name: string): Promise<OpenChannel> {
    const stored = this.get(name)
    const target: SshTarget = { name, ...parseProxyUrl(stored.url) }
    await this.keys.publicKey()
    const started = performance.now()
    const channel = SshChannel.open(this.keys, target)
    let info: ProxyServiceInfo
    try {
      info = await Promise.race([
        channel.client.call('hello', { version: this.version }),
        new Promise<never>((_, reject) => setTimeout(() => reject(new LifeboatError('PROXY_TIMEOUT', `The proxy "${name}" did not answer within ${HELLO_TIMEOUT_MS / 1000} s of ssh starting; check that ${target.host} is up and 'systemctl status lifeboat-proxy' there.`)), HELLO_TIMEOUT_MS).unref()),
      ])
    } catch (error) {
      channel.close()
      const { stderr } = await channel.exited
      throw await this.#failure(stored, target, stderr, error)
    }
    if (info.version !== this.version) {
      channel.close()
      throw new LifeboatError('PROXY_VERSION_MISMATCH', `The proxy "${name}" runs Lifeboat ${info.version} and this appliance ${this.version}: a run's specification is only understood by the same version. Install ${this.version} on the proxy (in /opt/lifeboat: git checkout, npm ci --omit=dev, then systemctl restart lifeboat-proxy), or this appliance's version to match.`, { data: { proxyVersion: info.version, applianceVersion: this.version } })
    }
    return { channel, info, connectMs: Math.round(performance.now() - started) }
  }

  /** What went wrong, from what ssh (and the bridge on the proxy) wrote on stderr. */
  async #failure(stored: StoredProxy, target: SshTarget, stderr: string, error: unknown): Promise<LifeboatError> {
    const where = `${target.user}@${target.host}:${target.port}`
    if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/.test(stderr)) {
      const now = await this.keys.scan(target).catch(() => [] as HostKey[])
      const offered = now[0]?.fingerprint ?? 'an unknown key (it could not be read again)'
      return new LifeboatError(
        'HOST_KEY_CHANGED',
        `The host key of the proxy "${stored.name}" (${target.host}:${target.port}) is not the one pinned when it was added: pinned ${stored.fingerprint}, offered now ${offered}. The daemon does not connect: someone may be in the middle. If the proxy was reinstalled, check the new fingerprint on its console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then pin it: 'npx lifeboat proxy add ${stored.name} ${stored.url} --fingerprint ${now[0]?.fingerprint ?? 'SHA256:…'} --replace'.`,
        { data: { pinned: stored.fingerprint, offered } },
      )
    }
    if (/Permission denied/.test(stderr)) {
      const { authorizedKeysLine } = await this.key()
      return new LifeboatError('PROXY_KEY_REFUSED', `The ssh server at ${where} refused the daemon's key. On the proxy, put this line in ~${target.user}/.ssh/authorized_keys ('npx lifeboat proxy key' prints it again), then run 'npx lifeboat proxy test ${stored.name}':\n${authorizedKeysLine}`)
    }
    const notRunning = /PROXY_NOT_RUNNING: (.*)/.exec(stderr)
    if (notRunning !== null) return new LifeboatError('PROXY_NOT_RUNNING', `The proxy host ${target.host} is reached over ssh, but its proxy service is not running there: ${notRunning[1]!.trim()}`)
    if (/Connection refused|Connection timed out|No route to host|Could not resolve|Network is unreachable|Connection reset|Connection closed by/.test(stderr)) {
      return new LifeboatError('PROXY_UNREACHABLE', `ssh could not reach the proxy "${stored.name}" at ${where} (${lastLine(stderr)}); check the host and port, that sshd runs there and that no firewall is in the way.`)
    }
    const said = lastLine(stderr)
    const reason = said !== '' ? said : error instanceof Error ? error.message : String(error)
    return new LifeboatError('PROXY_CHANNEL_FAILED', `The ssh channel to the proxy "${stored.name}" (${where}) failed: ${reason}. Check that 'lifeboat proxy --stdio' works on the proxy as ${target.user} (the authorized_keys command), and 'systemctl status lifeboat-proxy' there.`, { cause: error })
  }
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1)?.trim() ?? ''
}
