// `lifeboat remote add|list|info|test` on SMB (smbd) and NFS (nfs-ganesha), both started here, as an
// administrator types them: the SMB password from stdin (the URL's \0 typed for XO's NUL), the NFS URL with
// its ports; free space as the server's file system has it; the test passes on both; a wrong password is
// REMOTE_AUTH, a missing share or export and a server that is down REMOTE_UNAVAILABLE or REMOTE_BAD_URL, each
// with a sentence; the password is only in secrets.json (0600): not in state.json, the output, or the log.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readdir, readFile, stat, statfs } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir } from '../helpers/tools.ts'
import { startSamba, type SambaServer } from '../helpers/samba.ts'
import { startGanesha, type GaneshaServer } from '../helpers/ganesha.ts'
import { cli, cliJson, startDaemon, type DaemonProcess } from '../daemon/helpers.ts'

let dir: { path: string; cleanup: () => Promise<void> }
let daemon: DaemonProcess
let samba: SambaServer
let ganesha: GaneshaServer
// Every line the CLI printed, to look for the password in afterwards.
const printed: string[] = []

before(async () => {
  dir = await tempDir('lifeboat-cli-shares-')
  ;[samba, ganesha, daemon] = await Promise.all([startSamba(), startGanesha(), startDaemon(join(dir.path, 'daemon'))])
})

after(async () => {
  daemon.child.kill('SIGTERM')
  await daemon.exited
  await Promise.all([samba.cleanup(), ganesha.cleanup()])
  await dir.cleanup()
})

async function run(args: string[], input?: string, env: Record<string, string> = {}) {
  const result = await cli(daemon.socket, args, env, input)
  printed.push(result.stdout, result.stderr)
  return result
}

async function ok(args: string[], input?: string): Promise<string> {
  const result = await run(args, input)
  assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`)
  return result.stdout
}

/** The SMB URL as typed in a shell: no password, `\0` where XO keeps a NUL. */
function typedSmbUrl(target: string, sub: string): string {
  return `smb://${samba.user}@${samba.domain}\\\\127.0.0.1:${target}${sub === '' ? '' : `\\0${sub}`}`
}

/** The free space the server's file system has (what FSSTAT and FileFsFullSizeInformation report), against what Lifeboat says. */
async function assertSpace(name: string, folder: string): Promise<void> {
  const info = await cliJson(daemon.socket, ['remote', 'info', name])
  const fs = await statfs(folder)
  const [size, available] = [fs.blocks * fs.bsize, fs.bavail * fs.bsize]
  assert.ok(info.space !== undefined, `${name}: the free space is known`)
  // Servers count in their own units, and others write on this disk meanwhile: close, not equal.
  const near = (a: number, b: number) => Math.abs(a - b) < Math.max(1024 ** 3, b * 0.05)
  assert.ok(near(info.space.size, size), `${name}: a size of ${info.space.size} bytes, the file system says ${size}`)
  assert.ok(near(info.space.free, available), `${name}: ${info.space.free} bytes free, the file system says ${available}`)
}

test('smb: added with the password from stdin and \\0 typed before the sub-folder; list, info (free space) and test', { timeout: 180_000 }, async () => {
  const added = await ok(['remote', 'add', 'nas', typedSmbUrl(`${samba.port}\\${samba.share}`, 'cli\\site-a'), '--secret-stdin'], `${samba.password}\n`)
  const shown = `smb://${samba.user}:***@${samba.domain}\\\\127.0.0.1:${samba.port}\\${samba.share}\\0cli\\site-a`
  assert.equal(added, `remote "nas" added (${shown}): ok\n`)
  const [remote] = await cliJson(daemon.socket, ['remote', 'list'])
  assert.equal(remote.url, `smb://${samba.user}:***@${samba.domain}\\\\127.0.0.1:${samba.port}\\${samba.share}\0cli\\site-a`, '--json gives the URL exactly, its NUL too')
  const list = await ok(['remote', 'list'])
  assert.ok(list.split('\n').some(line => line.startsWith('nas ') && line.includes(shown) && / ok +[\d.]+ [KMGT]iB +[\d.]+ [KMGT]iB$/.test(line)), `list shows the URL, ok, the size and the free space:\n${list}`)
  const info = await ok(['remote', 'info', 'nas'])
  assert.match(info, /^ {2}type +SMB$/m)
  assert.match(info, new RegExp(`^ {2}URL +${shown.replace(/[\\*.]/g, '\\$&')}$`, 'm'))
  assert.match(info, /^ {2}free space +[\d.]+ [KMGT]iB free of [\d.]+ [KMGT]iB \([\d.]+ [KMGT]iB used\)$/m)
  assert.match(info, /^ {2}commit +written aside, then renamed into place$/m)
  assert.match(info, /^ {2}locks +lock folder$/m)
  assert.match(info, /^ {2}merges +in place \(VHD files\)$/m)
  await assertSpace('nas', samba.root)

  const tested = await ok(['remote', 'test', 'nas', '--mib', '4'])
  assert.match(tested, /^remote "nas" passed: a 4\.0 MiB probe written, read back whole and a 1\.0 MiB range, both compared, and deleted$/m)
  assert.match(tested, /^ {2}write +[\d.]+ MiB\/s$/m)
  assert.match(tested, /^ {2}read +[\d.]+ MiB\/s$/m)
  assert.match(tested, /^ {2}latency +write [\d.]+ ms, read [\d.]+ ms, stat [\d.]+ ms, delete [\d.]+ ms \(median of 5 files of 4 KiB\)$/m)
  assert.deepEqual(await readdir(join(samba.root, 'cli', 'site-a')), [], 'the test left nothing in the share')
})

test('smb: the password is in secrets.json (0600) only: not in state.json, what the CLI printed, or the log', async () => {
  const secrets = join(dir.path, 'daemon', 'secrets.json')
  assert.ok((await readFile(secrets, 'utf8')).includes(samba.password), 'secrets.json holds it')
  assert.equal((await stat(secrets)).mode & 0o777, 0o600, 'secrets.json is 0600')
  await ok(['remote', 'list'])
  await ok(['remote', 'list', '--json'])
  await ok(['remote', 'info', 'nas', '--json'])
  for (const [what, text] of [['state.json', await readFile(join(dir.path, 'daemon', 'state.json'), 'utf8')], ['the daemon log', daemon.log()], ['the CLI output', printed.join('\n')]] as const) {
    assert.ok(!text.includes(samba.password), `the password is not in ${what}`)
  }
})

test('smb: a wrong password is REMOTE_AUTH, a missing share REMOTE_BAD_URL, at add; neither is added nor prints the password', async () => {
  const wrong = await run(['remote', 'add', 'wrong', typedSmbUrl(`${samba.port}\\${samba.share}`, 'cli'), '--secret-env', 'SMB_PASSWORD'], undefined, { SMB_PASSWORD: 'Not-The-Password-9' })
  assert.equal(wrong.code, 1, wrong.stderr)
  assert.match(wrong.stderr, /^lifeboat: REMOTE_AUTH: The remote "wrong" was not added: The SMB remote smb:\/\/lifeboat-smb:\*\*\*@\S+ refused the credentials: .*STATUS_LOGON_FAILURE/m)
  assert.ok(!wrong.stderr.includes('Not-The-Password-9'), 'the wrong password is not printed either')
  const missing = await run(['remote', 'add', 'missing', typedSmbUrl(`${samba.port}\\nowhere`, ''), '--secret-stdin'], `${samba.password}\n`)
  assert.equal(missing.code, 1, missing.stderr)
  assert.match(missing.stderr, /^lifeboat: REMOTE_BAD_URL: The remote "missing" was not added: .*has no share named nowhere; check the share name in the remote's URL\.$/m)
  const names = (await cliJson(daemon.socket, ['remote', 'list'])).map((r: { name: string }) => r.name)
  assert.ok(!names.includes('wrong') && !names.includes('missing'), `neither is added: ${names.join(', ')}`)
})

test('nfs: added with its ports; list, info (free space from FSSTAT) and test', { timeout: 180_000 }, async () => {
  const url = ganesha.urlFor('cli')
  assert.equal(await ok(['remote', 'add', 'export', url]), `remote "export" added (${url}): ok\n`)
  const info = await ok(['remote', 'info', 'export'])
  assert.match(info, /^ {2}type +NFS$/m)
  assert.match(info, /^ {2}free space +[\d.]+ [KMGT]iB free of [\d.]+ [KMGT]iB \([\d.]+ [KMGT]iB used\)$/m)
  assert.match(info, /^ {2}commit +written aside, then renamed into place$/m)
  assert.match(info, /^ {2}locks +lock folder$/m)
  await assertSpace('export', ganesha.root)
  const tested = await ok(['remote', 'test', 'export', '--mib', '4'])
  assert.match(tested, /^remote "export" passed: a 4\.0 MiB probe written/m)
  assert.match(tested, /^ {2}latency +write [\d.]+ ms, read [\d.]+ ms, stat [\d.]+ ms, delete [\d.]+ ms/m)
  assert.deepEqual(await readdir(join(ganesha.root, 'cli')), [], 'the test left nothing in the export')
})

test('nfs: a path outside the exports and a folder missing in the export are REMOTE_UNAVAILABLE at add, saying which', async () => {
  const outside = await run(['remote', 'add', 'outside', `nfs://127.0.0.1:${ganesha.port}:/not/exported?mountPort=${ganesha.mountPort}`])
  assert.equal(outside.code, 1, outside.stderr)
  assert.match(outside.stderr, /^lifeboat: REMOTE_UNAVAILABLE: The remote "outside" was not added: .*\/not\/exported is in none of the exports of 127\.0\.0\.1 \(/m)
  const absent = await run(['remote', 'add', 'absent', `nfs://127.0.0.1:${ganesha.port}:${ganesha.exportPath}/absent?mountPort=${ganesha.mountPort}`])
  assert.equal(absent.code, 1, absent.stderr)
  assert.match(absent.stderr, /^lifeboat: REMOTE_UNAVAILABLE: The remote "absent" was not added: .*its folder \S+\/absent does not exist in the export/m)
})

test('servers down: REMOTE_UNAVAILABLE at add; the remotes added show the error in list and fail their test with it; back once the servers are', { timeout: 600_000 }, async () => {
  await Promise.all([samba.stop(), ganesha.stop()])
  try {
    const smb = await run(['remote', 'add', 'down', typedSmbUrl(`${samba.port}\\${samba.share}`, 'down'), '--secret-stdin'], `${samba.password}\n`)
    assert.equal(smb.code, 1, smb.stderr)
    assert.match(smb.stderr, /^lifeboat: REMOTE_UNAVAILABLE: The remote "down" was not added: .*the server 127\.0\.0\.1 cannot be reached \(.*ECONNREFUSED/m)
    const nfs = await run(['remote', 'add', 'down', ganesha.urlFor('down')])
    assert.equal(nfs.code, 1, nfs.stderr)
    assert.match(nfs.stderr, /^lifeboat: REMOTE_UNAVAILABLE: The remote "down" was not added: .*refused the connection/m)
    for (const name of ['nas', 'export']) {
      const tested = await run(['remote', 'test', name, '--mib', '1'])
      assert.equal(tested.code, 1, tested.stderr)
      assert.match(tested.stderr, new RegExp(`^lifeboat: REMOTE_TEST_FAILED: The remote "${name}" failed the test while [a-z ]+: REMOTE_UNAVAILABLE: `, 'm'))
    }
    const list = await ok(['remote', 'list'])
    for (const name of ['nas', 'export']) assert.match(list, new RegExp(`^${name} .* error: REMOTE_UNAVAILABLE`, 'm'), `list shows ${name} in error:\n${list}`)
  } finally {
    await Promise.all([samba.restart(), ganesha.restart()])
  }
  for (const name of ['nas', 'export']) assert.match(await ok(['remote', 'test', name, '--mib', '1']), new RegExp(`^remote "${name}" passed`, 'm'))
  assert.ok(!printed.join('\n').includes(samba.password), 'no failure printed the password')
  assert.ok(!daemon.log().includes(samba.password), 'nor logged it (the retries are logged)')
  assert.match(daemon.log(), /smb:\/\/lifeboat-smb:\*\*\*@\S+cli\\site-a/, 'the log names the remote, masked')
  assert.ok(!daemon.log().includes('\0'), 'the log holds no NUL (journald and grep would take it for binary data)')
})
