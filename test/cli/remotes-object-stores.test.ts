// `lifeboat remote add|list|info|test` on S3 (s3rver) and Azure (azurite), both started here: the secret
// given aside (stdin, or typed at the hidden prompt in a real terminal) reaches the daemon whole and is
// printed nowhere afterwards; a refused key is REMOTE_AUTH and a missing container REMOTE_UNAVAILABLE at
// add; info says free space unknown and names the locks and merges; the test passes on both.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir, requireTool } from '../helpers/tools.ts'
import { startAzurite, AZURITE_ACCOUNT, AZURITE_KEY, type Azurite } from '../helpers/azurite.ts'
import { startS3rver, S3RVER_KEY, type S3rver } from '../helpers/s3rver.ts'
import { Tmux } from '../helpers/tmux.ts'
import { cli, cliJson, LIFEBOAT, startDaemon, type DaemonProcess } from '../daemon/helpers.ts'

const S3_KEY = 'LIFEBOATKEY'
const S3_SECRET = 'Typed/At+The=Prompt'

let dir: { path: string; cleanup: () => Promise<void> }
let daemon: DaemonProcess
let azurite: Azurite
let s3: S3rver

before(async () => {
  dir = await tempDir('lifeboat-cli-stores-')
  ;[azurite, s3, daemon] = await Promise.all([startAzurite(), startS3rver({ keys: [[S3_KEY, S3_SECRET]] }), startDaemon(join(dir.path, 'daemon'))])
})

after(async () => {
  daemon.child.kill('SIGTERM')
  await daemon.exited
  await Promise.all([azurite.stop(), s3.stop()])
  await dir.cleanup()
})

/** The URL without its secret: what an administrator types. */
const withoutSecret = (url: string) => url.replace(/:[^:@/]+@/, '@')

test('azure: the account key from stdin; list, info and --json never show it; info and test', async () => {
  const url = withoutSecret(azurite.urlFor('cli'))
  assert.ok(!url.includes(AZURITE_KEY), 'the URL typed holds no key')
  const printed: string[] = []
  const run = async (args: string[], input?: string) => {
    const result = await cli(daemon.socket, args, {}, input)
    printed.push(result.stdout, result.stderr)
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`)
    return result.stdout
  }
  const added = JSON.parse(await run(['remote', 'add', 'blob', url, '--secret-stdin', '--json'], `${AZURITE_KEY}\n`))
  assert.equal(added.status, 'ok', 'the key reached the daemon whole: azurite checks it')
  assert.equal(added.url, `azurite+http://${AZURITE_ACCOUNT}:***@127.0.0.1:${azurite.port}/${azurite.container}/cli`)
  const info = await run(['remote', 'info', 'blob'])
  assert.match(info, /^ {2}type +Azure Blob$/m)
  assert.match(info, /^ {2}free space +unknown \(S3 and Azure do not report it\)$/m)
  assert.match(info, /^ {2}VHD layout +VhdDirectory \(always, on object stores\)$/m)
  assert.match(info, /^ {2}commit +written whole, the final name last$/m)
  assert.match(info, /^ {2}locks +lease$/m)
  assert.match(info, /^ {2}merges +block copies \(VhdDirectory\)$/m)
  assert.match(await run(['remote', 'list']), /^blob +azure +azurite\+http:\/\/devstoreaccount1:\*\*\*@\S+ +ok +- +unknown$/m)
  await run(['remote', 'list', '--json'])
  assert.match(await run(['remote', 'test', 'blob', '--mib', '2']), /^remote "blob" passed: a 2\.0 MiB probe written, read back whole and a 1\.0 MiB range/)
  for (const text of [...printed, daemon.log(), await readFile(join(dir.path, 'daemon', 'state.json'), 'utf8')]) assert.ok(!text.includes(AZURITE_KEY), 'the key is shown nowhere, nor in the log or state.json')
  assert.ok((await readFile(join(dir.path, 'daemon', 'secrets.json'), 'utf8')).includes(encodeURIComponent(AZURITE_KEY)), 'only secrets.json holds it')
})

test('azure: a wrong key is REMOTE_AUTH and a missing container REMOTE_UNAVAILABLE, at add', async () => {
  const wrong = await cli(daemon.socket, ['remote', 'add', 'wrong', withoutSecret(azurite.urlFor('cli')), '--secret-env', 'KEY'], { KEY: Buffer.alloc(64, 7).toString('base64') })
  assert.equal(wrong.code, 1)
  assert.match(wrong.stderr, /^lifeboat: REMOTE_AUTH: The remote "wrong" was not added: The remote azurite\+http:\/\/devstoreaccount1:\*\*\*@.* refused the credentials of account devstoreaccount1/m)
  const missing = await cli(daemon.socket, ['remote', 'add', 'missing', withoutSecret(azurite.urlFor('cli', 'nowhere')), '--secret-env', 'KEY'], { KEY: AZURITE_KEY })
  assert.equal(missing.code, 1)
  assert.match(missing.stderr, /^lifeboat: REMOTE_UNAVAILABLE: The remote "missing" was not added: .*its container nowhere does not exist/m)
  const names = (await cliJson(daemon.socket, ['remote', 'list'])).map((r: { name: string }) => r.name)
  assert.ok(!names.includes('wrong') && !names.includes('missing'), 'neither is added')
})

test('s3: the secret typed at the hidden prompt in a terminal; an unknown key is REMOTE_AUTH; info and test', { timeout: 120_000 }, async () => {
  requireTool('tmux', 'tmux')
  const url = `s3+http://${S3_KEY}@127.0.0.1:${s3.port}/${s3.bucket}/prompted`
  const tmux = new Tmux(`lifeboat-prompt-${process.pid}`)
  try {
    tmux.start(`${process.execPath} ${LIFEBOAT} remote add prompted '${url}' --socket ${daemon.socket}; sleep 60`, 200)
    await tmux.waitFor(`Secret access key for s3+http://${S3_KEY}:***@127.0.0.1:${s3.port}/${s3.bucket}/prompted (not shown):`)
    tmux.type(S3_SECRET)
    tmux.keys('Enter')
    const screen = await tmux.waitFor(/remote "prompted" added \(s3\+http:\/\/LIFEBOATKEY:\*\*\*@[^)]+\): ok/)
    assert.ok(!screen.includes(S3_SECRET), `the secret is not echoed:\n${screen}`)
  } finally {
    tmux.kill()
  }
  assert.ok((await readFile(join(dir.path, 'daemon', 'secrets.json'), 'utf8')).includes(encodeURIComponent(S3_SECRET)), 'the typed secret reached the daemon')
  const info = await cli(daemon.socket, ['remote', 'info', 'prompted'])
  assert.match(info.stdout, /^ {2}type +S3$/m)
  assert.match(info.stdout, /^ {2}free space +unknown \(S3 and Azure do not report it\)$/m)
  assert.match(info.stdout, /^ {2}locks +lock object$/m)
  assert.match(info.stdout, /^ {2}largest file +5\.0 TiB$/m)
  const tested = await cli(daemon.socket, ['remote', 'test', 'prompted', '--mib', '6'])
  assert.equal(tested.code, 0, tested.stderr)
  assert.match(tested.stdout, /^ {2}latency +write [\d.]+ ms, read [\d.]+ ms, stat [\d.]+ ms, delete [\d.]+ ms/m)

  // s3rver checks the access key (not the signature): an unknown one is refused.
  const unknown = await cli(daemon.socket, ['remote', 'add', 'unknown', `s3+http://NOBODY@127.0.0.1:${s3.port}/${s3.bucket}/x`, '--secret-stdin'], {}, 'whatever\n')
  assert.equal(unknown.code, 1)
  assert.match(unknown.stderr, /^lifeboat: REMOTE_AUTH: The remote "unknown" was not added: The S3 server of s3\+http:\/\/NOBODY:\*\*\*@/m)
  assert.ok(!unknown.stderr.includes(S3RVER_KEY + ':'), 'no key pair is printed')
})
