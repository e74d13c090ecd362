// Proxies, end to end with real parts: a real sshd on a loopback port (its own host key and authorized_keys),
// the proxy service as its own process with its own data folder, and the appliance's daemon driven with the
// CLI: add (host key pinned, the daemon's key made 0600) / list / test / remove, a changed host key refused
// with both fingerprints, a proxy of another version refused with both versions, the service not running,
// and ssh refusing the key or nobody listening.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir } from '../helpers/tools.ts'
import { startSshd, type Sshd } from '../helpers/sshd.ts'
import { bridgeKeyLine, otherInstall, startProxy, type ProxyProcess } from '../helpers/proxy.ts'
import { cli, cliJson, LIFEBOAT, startDaemon, type DaemonProcess } from './helpers.ts'

const VERSION = (JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version

let dir: { path: string; cleanup: () => Promise<void> }
let sshd: Sshd
let proxy: ProxyProcess
let daemon: DaemonProcess
let publicKey: string
let url: string

before(async () => {
  dir = await tempDir('lifeboat-proxies-')
  sshd = await startSshd(join(dir.path, 'sshd'))
  url = `ssh://${sshd.user}@127.0.0.1:${sshd.port}`
  proxy = await startProxy(join(dir.path, 'proxy'))
  daemon = await startDaemon(join(dir.path, 'daemon'))
  publicKey = (await cliJson<{ publicKey: string }>(daemon.socket, ['proxy', 'key'])).publicKey
})

after(async () => {
  daemon.child.kill('SIGTERM')
  await daemon.exited
  await proxy.stop()
  await sshd.stop()
  await dir.cleanup()
})

const authorizeBridge = (dataDir = proxy.dataDir, root?: string) => sshd.authorize([bridgeKeyLine(publicKey, dataDir, root)])

test('the proxy service: its own data folder, locked; --stdio bridges to its socket and answers hello with its version', async () => {
  const second = await new Promise<{ code: number | null; stderr: string }>(resolve => {
    const child = spawn(process.execPath, [LIFEBOAT, 'proxy', '--data', proxy.dataDir], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('close', code => resolve({ code, stderr }))
  })
  assert.equal(second.code, 1)
  assert.match(second.stderr, /PROXY_ALREADY_RUNNING: Another Lifeboat proxy \(pid \d+\) uses the data directory .*systemctl stop lifeboat-proxy/)
  const answer = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [LIFEBOAT, 'proxy', '--stdio', '--data', proxy.dataDir], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString()
      if (stdout.includes('\n')) child.stdin!.end()
    })
    child.on('error', reject)
    child.on('close', () => resolve(stdout))
    child.stdin!.write(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'hello', params: { version: VERSION } }) + '\n')
  })
  const reply = JSON.parse(answer) as { result: { version: string; dataDir: string } }
  assert.equal(reply.result.version, VERSION)
  assert.equal(reply.result.dataDir, proxy.dataDir)
})

test('proxy add pins the host key and tests; list, test (fingerprint, version, latency) and remove', async () => {
  await authorizeBridge()
  const added = await cliJson(daemon.socket, ['proxy', 'add', 'edge', url])
  assert.equal(added.problem, undefined)
  assert.equal(added.proxy.fingerprint, sshd.fingerprint())
  assert.equal(added.test.version, VERSION)
  assert.equal(typeof added.test.latencyMs, 'number')
  assert.match(added.authorizedKeysLine, /^restrict,command="[^"]+ proxy --stdio[^"]*" ssh-ed25519 \S+ lifeboat-daemon@/)
  assert.equal((await stat(join(daemon.socket, '..', 'ssh', 'id_ed25519'))).mode & 0o777, 0o600)
  assert.match(await readFile(join(daemon.socket, '..', 'ssh', 'known_hosts'), 'utf8'), /^lifeboat-proxy-edge ssh-ed25519 /m)

  const listed = await cliJson(daemon.socket, ['proxy', 'list'])
  assert.deepEqual(listed.map((p: { name: string; url: string; fingerprint: string }) => [p.name, p.url, p.fingerprint]), [['edge', url, sshd.fingerprint()]])
  const human = await cli(daemon.socket, ['proxy', 'test', 'edge'])
  assert.equal(human.code, 0, human.stderr)
  assert.match(human.stdout, new RegExp(`host key  ${sshd.fingerprint().replace(/[+/]/g, '\\$&')} \\(pinned\\)`))
  assert.match(human.stdout, new RegExp(`version   lifeboat ${VERSION.replace(/\./g, '\\.')} on `))
  assert.match(human.stdout, /latency   [\d.]+ ms \(median of 5 calls/)

  const again = await cli(daemon.socket, ['proxy', 'add', 'edge', url])
  assert.match(again.stderr, /PROXY_EXISTS/)
  assert.equal((await cli(daemon.socket, ['proxy', 'remove', 'edge'])).code, 0)
  assert.deepEqual(await cliJson(daemon.socket, ['proxy', 'list']), [])
  assert.doesNotMatch(await readFile(join(daemon.socket, '..', 'ssh', 'known_hosts'), 'utf8'), /lifeboat-proxy-edge/)
  assert.match((await cli(daemon.socket, ['proxy', 'test', 'edge'])).stderr, /PROXY_NOT_FOUND/)
})

test('ssh refused: nobody listening is refused at add; a key not authorized is kept with the line to authorize', async () => {
  const closed = await cli(daemon.socket, ['proxy', 'add', 'nowhere', 'ssh://root@127.0.0.1:1'])
  assert.equal(closed.code, 1)
  assert.match(closed.stderr, /PROXY_UNREACHABLE: No ssh server answers at 127\.0\.0\.1:1/)

  await sshd.authorize([])
  const added = await cliJson(daemon.socket, ['proxy', 'add', 'locked', url])
  assert.equal(added.problem.code, 'PROXY_KEY_REFUSED')
  assert.ok(added.problem.message.includes(added.authorizedKeysLine), added.problem.message)
  const refused = await cli(daemon.socket, ['proxy', 'test', 'locked'])
  assert.equal(refused.code, 1)
  assert.match(refused.stderr, /PROXY_KEY_REFUSED: The ssh server at .* refused the daemon's key/)
  await authorizeBridge()
  assert.equal((await cliJson(daemon.socket, ['proxy', 'test', 'locked'])).version, VERSION)
  await cliJson(daemon.socket, ['proxy', 'remove', 'locked'])
})

test('the proxy service not running: said, with the command that starts it', async () => {
  await authorizeBridge()
  await cliJson(daemon.socket, ['proxy', 'add', 'sleepy', url])
  assert.equal(await proxy.stop(), 0)
  const result = await cli(daemon.socket, ['proxy', 'test', 'sleepy'])
  assert.equal(result.code, 1)
  assert.match(result.stderr, /PROXY_NOT_RUNNING: The proxy host 127\.0\.0\.1 is reached over ssh, but its proxy service is not running there: .*systemctl enable --now lifeboat-proxy/)
  proxy = await startProxy(proxy.dataDir)
  assert.equal((await cliJson(daemon.socket, ['proxy', 'test', 'sleepy'])).version, VERSION)
  await cliJson(daemon.socket, ['proxy', 'remove', 'sleepy'])
})

test('a proxy of another version is refused with both versions named', async () => {
  const root = await otherInstall(join(dir.path, 'other-install'), '0.0.1-other')
  const other = await startProxy(join(dir.path, 'other-proxy'), root)
  try {
    await authorizeBridge(other.dataDir, root)
    const added = await cliJson(daemon.socket, ['proxy', 'add', 'old', url])
    assert.equal(added.problem.code, 'PROXY_VERSION_MISMATCH')
    const result = await cli(daemon.socket, ['proxy', 'test', 'old'])
    assert.equal(result.code, 1)
    assert.match(result.stderr, new RegExp(`PROXY_VERSION_MISMATCH: The proxy "old" runs Lifeboat 0\\.0\\.1-other and this appliance ${VERSION.replace(/\./g, '\\.')}`))
    await cliJson(daemon.socket, ['proxy', 'remove', 'old'])
  } finally {
    await other.stop()
    await authorizeBridge()
  }
})

test('a changed host key is refused with both fingerprints named; --fingerprint --replace pins the new one', async () => {
  await authorizeBridge()
  await cliJson(daemon.socket, ['proxy', 'add', 'edge', url])
  const pinned = sshd.fingerprint()
  await sshd.changeHostKey()
  const offered = sshd.fingerprint()
  assert.notEqual(offered, pinned)
  const refused = await cli(daemon.socket, ['proxy', 'test', 'edge'])
  assert.equal(refused.code, 1)
  assert.ok(refused.stderr.includes(`HOST_KEY_CHANGED: The host key of the proxy "edge" (127.0.0.1:${sshd.port}) is not the one pinned when it was added: pinned ${pinned}, offered now ${offered}.`), refused.stderr)

  const wrong = await cli(daemon.socket, ['proxy', 'add', 'edge', url, '--replace', '--fingerprint', pinned])
  assert.match(wrong.stderr, /HOST_KEY_MISMATCH/)
  const replaced = await cliJson(daemon.socket, ['proxy', 'add', 'edge', url, '--replace', '--fingerprint', offered])
  assert.equal(replaced.proxy.fingerprint, offered)
  assert.equal(replaced.test.version, VERSION)
  await cliJson(daemon.socket, ['proxy', 'remove', 'edge'])
})
