// An encrypted remote through the real daemon and CLI: `remote add` makes an empty folder encrypted, refuses
// what XO refuses (no VhdDirectory) and a wrong key, and the key shows nowhere: not in answers, errors,
// the daemon's log or state.json; only in secrets.json (0600).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir } from '../helpers/tools.ts'
import { cli, startDaemon, type DaemonProcess } from '../daemon/helpers.ts'

const KEY = '73c1838d7d8a6088ca2317fb5f29cd91'
const OTHER_KEY = '0123456789abcdef0123456789abcdef'
const encrypted = (path: string, key: string, options = 'useVhdDirectory=true&') => `file://${path}?${options}encryptionKey=${encodeURIComponent(JSON.stringify(key))}`

let dir: { path: string; cleanup: () => Promise<void> }
let daemon: DaemonProcess
const seen: string[] = []

/** `remote add` with the URL out of the command line (--url-env), everything it printed kept for the leak check. */
async function add(name: string, url: string) {
  const result = await cli(daemon.socket, ['remote', 'add', name, '--url-env', 'REMOTE_URL', '--json'], { REMOTE_URL: url })
  seen.push(result.stdout, result.stderr)
  return result
}

/** `remote add` refused with this code; its stderr. */
async function refused(name: string, url: string, code: string): Promise<string> {
  const result = await add(name, url)
  assert.notEqual(result.code, 0, `${name}: refused`)
  assert.match(result.stderr, new RegExp(code))
  return result.stderr
}

before(async () => {
  dir = await tempDir('lifeboat-crypt-daemon-')
  daemon = await startDaemon(join(dir.path, 'daemon'))
})

after(async () => {
  daemon.child.kill('SIGTERM')
  await daemon.exited
  await dir.cleanup()
})

test('remote add makes an empty folder an encrypted remote, as XO would (encryption.json plaintext, metadata.json encrypted)', async () => {
  const folder = join(dir.path, 'vault')
  await mkdir(folder)
  const result = await add('vault', encrypted(folder, KEY))
  assert.equal(result.code, 0, result.stderr)
  const remote = JSON.parse(result.stdout) as { url: string; status: string }
  assert.equal(remote.status, 'ok')
  assert.match(remote.url, /encryptionKey=%22\*\*\*%22|encryptionKey=\*\*\*/, 'the answer shows the key redacted')
  assert.deepEqual(JSON.parse(await readFile(join(folder, 'encryption.json'), 'utf8')), { algorithm: 'chacha20-poly1305' })
  assert.equal((await readFile(join(folder, 'metadata.json'))).includes('random'), false, 'metadata.json is encrypted')
  const listed = await cli(daemon.socket, ['remote', 'list', '--json'])
  seen.push(listed.stdout, listed.stderr)
  assert.equal(listed.code, 0, listed.stderr)
})

test('remote add refuses encryptionKey without useVhdDirectory=true (REMOTE_BAD_URL), as XO does', async () => {
  const folder = join(dir.path, 'plain-files')
  await mkdir(folder)
  for (const options of ['', 'useVhdDirectory=false&']) assert.match(await refused('no-vhd-dir', encrypted(folder, KEY, options), 'REMOTE_BAD_URL'), /useVhdDirectory=true/)
})

test('remote add refuses a key that does not match the remote\'s (REMOTE_BAD_KEY), a non-empty unencrypted folder (REMOTE_NOT_EMPTY) and an encrypted one without its key (REMOTE_ENCRYPTED)', async () => {
  const vault = join(dir.path, 'vault')
  await mkdir(join(vault, 'xo-vm-backups'), { recursive: true })
  await writeFile(join(vault, 'xo-vm-backups', 'placeholder'), 'x')
  assert.match(await refused('wrong-key', encrypted(vault, OTHER_KEY), 'REMOTE_BAD_KEY'), /does not match the key this remote was encrypted with/)
  const busy = join(dir.path, 'busy')
  await mkdir(join(busy, 'xo-vm-backups'), { recursive: true })
  await writeFile(join(busy, 'xo-vm-backups', 'old.json'), '{}')
  await refused('busy', encrypted(busy, KEY), 'REMOTE_NOT_EMPTY')
  await refused('no-key', `file://${vault}?useVhdDirectory=true`, 'REMOTE_ENCRYPTED')
})

test('the key is nowhere but secrets.json (0600): not in answers, errors, the daemon log or state.json', async () => {
  const data = join(dir.path, 'daemon')
  assert.equal((await stat(join(data, 'secrets.json'))).mode & 0o777, 0o600)
  assert.equal((await readFile(join(data, 'secrets.json'), 'utf8')).includes(KEY), true, 'secrets.json keeps the URL to open the remote')
  const texts = [...seen, daemon.log(), await readFile(join(data, 'state.json'), 'utf8')]
  for (const text of texts) {
    for (const key of [KEY, OTHER_KEY]) assert.equal(text.includes(key), false, `a key leaks in: ${text.slice(0, 300)}`)
  }
})
