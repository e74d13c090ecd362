// `lifeboat remote add|list|info|test` against a real daemon process, on local folders: a bad URL gets
// the parser's coded sentence, a secret given aside is put in the URL and never printed, info and test
// read as an administrator expects (human and --json), and a failed test names its step.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir } from '../helpers/tools.ts'
import { cli, cliJson, startDaemon, type DaemonProcess } from '../daemon/helpers.ts'

let dir: { path: string; cleanup: () => Promise<void> }
let daemon: DaemonProcess

before(async () => {
  dir = await tempDir('lifeboat-cli-remotes-')
  daemon = await startDaemon(join(dir.path, 'daemon'))
})

after(async () => {
  daemon.child.kill('SIGTERM')
  await daemon.exited
  await dir.cleanup()
})

test('remote add: a bad URL is refused with the parser’s coded sentence, and nothing is added', async () => {
  for (const [url, why] of [
    ['ftp://host/x', /^lifeboat: REMOTE_BAD_URL: The remote URL ftp:\/\/\*\*\* is not valid: it should start with file:\/\/, nfs:\/\/, smb:\/\/, s3:\/\/, s3\+http:\/\/, azure:\/\/, azurite:\/\/ or azurite\+http:\/\/\.$/],
    ['nfs://host-without-export', /^lifeboat: REMOTE_BAD_URL: .*the NFS form is nfs:\/\/host\[:port\]:\/export\/path\.$/],
    ['s3://KEY:se%zzcret@host/bucket', /^lifeboat: REMOTE_BAD_URL: .*(malformed|invalid)/],
  ] as const) {
    const result = await cli(daemon.socket, ['remote', 'add', 'bad', url])
    assert.equal(result.code, 1, result.stderr)
    assert.match(result.stderr.trimEnd().split('\n').at(-1)!, why)
    assert.doesNotMatch(result.stderr, /se%zzcret/, 'the secret of a bad URL is not echoed')
  }
  assert.deepEqual(await cliJson(daemon.socket, ['remote', 'list']), [])
})

test('remote add: a secret aside from a URL that has no place for one is a usage error', async () => {
  const folder = join(dir.path, 'plain')
  await mkdir(folder)
  const result = await cli(daemon.socket, ['remote', 'add', 'plain', `file://${folder}`, '--secret-stdin'], {}, 'nothing\n')
  assert.equal(result.code, 2, result.stderr)
  assert.match(result.stderr, /^lifeboat: a file:\/\/ remote has no secret: drop --secret-\*/)
  const twice = await cli(daemon.socket, ['remote', 'add', 'twice', 'smb://user:pw@DOM\\\\host\\share', '--secret-env', 'SMB_PASSWORD'], { SMB_PASSWORD: 'other' })
  assert.equal(twice.code, 2, twice.stderr)
  assert.match(twice.stderr, /the URL already holds the password: give it once/)
  const both = await cli(daemon.socket, ['remote', 'add', 'both', 'smb://user@DOM\\\\host\\share', '--secret-env', 'SMB_PASSWORD', '--secret-stdin'], { SMB_PASSWORD: 'other' }, 'x\n')
  assert.equal(both.code, 2, both.stderr)
  assert.match(both.stderr, /give the secret with exactly one of --secret-env VAR or --secret-file FILE or --secret-stdin/)
})

test('remote add: a secret typed in the URL is warned about and never printed back', async () => {
  const result = await cli(daemon.socket, ['remote', 'add', 'share', 'smb://backup:Typed-Pa55@DOM\\\\nas\\backups'])
  assert.match(result.stderr, /warning: the URL's password was typed on the command line, where the shell history keeps it/)
  assert.doesNotMatch(result.stdout + result.stderr, /Typed-Pa55/)
})

test('remote add --encryption-key-env: an encrypted local folder, shown as such and never with its key', async () => {
  const folder = join(dir.path, 'sealed')
  await mkdir(folder)
  const key = 'Kq7-secret-encryption-key-32-chr'
  const printed: string[] = []
  const run = async (args: string[]) => {
    const result = await cli(daemon.socket, args, { KEY: key })
    printed.push(result.stdout, result.stderr)
    assert.equal(result.code, 0, result.stderr)
    return result.stdout
  }
  const added = JSON.parse(await run(['remote', 'add', 'sealed', `file://${folder}?useVhdDirectory=true`, '--encryption-key-env', 'KEY', '--json']))
  assert.equal(added.status, 'ok')
  assert.match(added.url, /encryptionKey=%22\*\*\*%22/)
  const info = await run(['remote', 'info', 'sealed'])
  assert.match(info, /^ {2}encryption +on \(encryptionKey\)$/m)
  assert.match(info, /^ {2}VHD layout +VhdDirectory \(useVhdDirectory\)$/m)
  assert.match(info, /^ {2}merges +block copies \(VhdDirectory\)$/m)
  await run(['remote', 'list'])
  await run(['remote', 'list', '--json'])
  await run(['remote', 'test', 'sealed', '--mib', '1'])
  for (const text of [...printed, daemon.log()]) assert.ok(!text.includes(key), 'the key is printed nowhere, nor in the daemon log')
  await run(['remote', 'remove', 'sealed'])
})

test('remote list, info and test on a local folder, human and --json', async () => {
  const folder = join(dir.path, 'local')
  await mkdir(folder)
  const added = await cliJson(daemon.socket, ['remote', 'add', 'local', `file://${folder}`])
  assert.equal(added.status, 'ok')

  const info = await cli(daemon.socket, ['remote', 'info', 'local'])
  assert.equal(info.code, 0, info.stderr)
  assert.match(info.stdout, /^remote "local"\n/)
  assert.match(info.stdout, /^ {2}type +local folder$/m)
  assert.match(info.stdout, new RegExp(`^  URL +file://${folder}$`, 'm'))
  assert.match(info.stdout, /^ {2}status +✔ ok$/m)
  assert.match(info.stdout, /^ {2}free space +[\d.]+ [KMGTP]iB free of [\d.]+ [KMGTP]iB \([\d.]+ [KMGTP]?i?B used\)$/m)
  assert.match(info.stdout, /^ {2}encryption +off$/m)
  assert.match(info.stdout, /^ {2}VHD layout +VHD files$/m)
  assert.match(info.stdout, /^ {2}commit +written aside, then renamed into place$/m)
  assert.match(info.stdout, /^ {2}locks +lock folder$/m)
  assert.match(info.stdout, /^ {2}merges +in place \(VHD files\)$/m)
  const json = await cliJson(daemon.socket, ['remote', 'info', 'local'])
  assert.deepEqual([json.type, json.encryption, json.vhdDirectory], ['file', false, false])

  const tested = await cli(daemon.socket, ['remote', 'test', 'local', '--mib', '2'])
  assert.equal(tested.code, 0, tested.stderr)
  const lines = tested.stdout.trimEnd().split('\n')
  assert.match(lines[0]!, /^remote "local" passed: a 2\.0 MiB probe written, read back whole and a 1\.0 MiB range, both compared, and deleted$/)
  assert.match(lines[1]!, /^ {2}write +[\d.]+ MiB\/s$/)
  assert.match(lines[2]!, /^ {2}read +[\d.]+ MiB\/s$/)
  assert.match(lines[3]!, /^ {2}latency +write [\d.]+ ms, read [\d.]+ ms, stat [\d.]+ ms, delete [\d.]+ ms \(median of 5 files of 4 KiB\)$/)
  const probe = await cliJson(daemon.socket, ['remote', 'test', 'local', '--mib', '1'])
  assert.equal(probe.bytes, 1024 * 1024)
  assert.ok(probe.range.length > 0 && probe.latencyMs.write >= 0, 'the JSON has the range and the latencies')
  const badSize = await cli(daemon.socket, ['remote', 'test', 'local', '--mib', '0'])
  assert.equal(badSize.code, 2, badSize.stderr)

  // A folder that went away: the test says it failed while preparing, with the backend's code.
  await rm(folder, { recursive: true })
  const failed = await cli(daemon.socket, ['remote', 'test', 'local', '--mib', '1'])
  assert.equal(failed.code, 1)
  assert.match(failed.stderr, /^lifeboat: REMOTE_TEST_FAILED: The remote "local" failed the test while preparing it: REMOTE_UNAVAILABLE: /)
  const list = await cli(daemon.socket, ['remote', 'list'])
  assert.match(list.stdout, /^local +file +file:\/\/\S+ +error: REMOTE_UNAVAILABLE/m)
  await cliJson(daemon.socket, ['remote', 'remove', 'local'])
})
