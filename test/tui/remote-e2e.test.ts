// The remote form in a real terminal (tmux) against a real daemon, by keys only: a local folder added
// through the form (a refused folder first: the coded sentence shown, what was typed kept), its info, and
// its test with the speeds and latencies; an SMB and an NFS remote against Samba and ganesha.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DaemonClient } from '../../source/client/index.ts'
import { requireTool, tempDir } from '../helpers/tools.ts'
import { Tmux } from '../helpers/tmux.ts'
import { startDaemon, type DaemonProcess } from '../daemon/helpers.ts'
import { startSamba } from '../helpers/samba.ts'
import { startGanesha } from '../helpers/ganesha.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** The TUI on the daemon, in tmux, at the remote form of an empty remotes screen. */
async function openRemoteForm(tmux: Tmux, socket: string): Promise<void> {
  tmux.start(`CI=false ${process.execPath} --import tsx ${join(root, 'test/tui/start-tui.ts')} ${socket}`)
  await tmux.waitFor('No jobs yet')
  tmux.keys(':')
  tmux.type('remotes')
  await tmux.press(['Enter'], 'No remotes: press a to add one.')
  await tmux.press(['a'], 'Add a remote')
}

test('e2e in tmux: a remote added through the form, its info and its test', { timeout: 180_000 }, async () => {
  requireTool('tmux', 'tmux')
  const dir = await tempDir('lifeboat-tui-remote-')
  const tmux = new Tmux(`lifeboat-remote-e2e-${process.pid}`)
  let daemon: DaemonProcess | undefined
  try {
    daemon = await startDaemon(join(dir.path, 'state'))
    const folder = join(dir.path, 'backups')
    await openRemoteForm(tmux, daemon.socket)
    // The type's choices turn with →: NFS shows its own fields, ← comes back to a local folder.
    await tmux.press(['Right'], /Export path/)
    await tmux.press(['Left'], /Folder +absolute, must exist/)
    tmux.keys('Down')
    tmux.type('site-a')
    tmux.keys('Down')
    tmux.type(folder)
    // The folder does not exist yet: refused with the daemon's code, the form kept as typed.
    let screen = await tmux.press(['Enter'], 'REMOTE_UNAVAILABLE')
    assert.match(screen.replace(/\s*\n\s*/g, ' '), /✖ add remote site-a failed: REMOTE_UNAVAILABLE: The remote "site-a" was not added: /)
    assert.ok(screen.includes(folder.slice(0, 40)), `the folder typed is still there:\n${screen}`)
    await mkdir(folder)
    screen = await tmux.press(['Enter'], /✔ ok +site-a +file/)
    assert.doesNotMatch(screen, /Add a remote/)

    const client = await DaemonClient.connect(daemon.socket)
    try {
      const [remote] = await client.call('remote.list')
      assert.equal(remote?.url, `file://${folder}`)
    } finally {
      client.close()
    }

    screen = await tmux.press(['i'], /Remote site-a\n.*type +local folder/)
    assert.match(screen, /free space +[\d.]+ [KMGTP]iB free of/)
    assert.match(screen, /last test +none yet: press t/)
    screen = await tmux.press(['t'], /last test +write [\d.]+ MiB\/s, read [\d.]+ MiB\/s \(64 MiB probe\)/)
    assert.match(screen, /latency +write [\d.]+ ms, read [\d.]+ ms, stat [\d.]+ ms, delete [\d.]+ ms/)
    await tmux.press(['Escape'], 'URL / problem')
  } finally {
    tmux.kill()
    daemon?.child.kill('SIGTERM')
    await daemon?.exited
    await dir.cleanup()
  }
})

test('e2e in tmux: an SMB remote (a wrong password first, fixed in place) and an NFS remote added through the form against Samba and ganesha', { timeout: 300_000 }, async () => {
  requireTool('tmux', 'tmux')
  const dir = await tempDir('lifeboat-tui-shares-')
  const tmux = new Tmux(`lifeboat-shares-e2e-${process.pid}`)
  const [samba, ganesha] = await Promise.all([startSamba(), startGanesha()])
  let daemon: DaemonProcess | undefined
  try {
    daemon = await startDaemon(join(dir.path, 'state'))
    await openRemoteForm(tmux, daemon.socket)
    await tmux.press(['Right', 'Right'], /Share +the share's name/)
    const field = async (text: string, expect: RegExp) => {
      tmux.keys('Down')
      tmux.type(text)
      return tmux.waitFor(expect)
    }
    await field('nas', /Name +nas/)
    tmux.keys('Down') // the domain: WORKGROUP when left empty
    await field(samba.user, /User +lifeboat-smb█/)
    await field('Wrong-Pa55', /Password +•{10}/)
    await field(`127.0.0.1:${samba.port}`, new RegExp(`Host +127\\.0\\.0\\.1:${samba.port}█`))
    await field(samba.share, /Share +backups/)
    let screen = await field('tui', /URL: smb:\/\/lifeboat-smb:\*\*\*@WORKGROUP\\\\127\.0\.0\.1:\d+\\backups\\0tui/)
    assert.ok(!screen.includes('Wrong-Pa55'), `the password is not shown:\n${screen}`)
    screen = await tmux.press(['Enter'], 'REMOTE_AUTH')
    assert.match(screen.replace(/\s*\n\s*/g, ' '), /✖ add remote nas failed: REMOTE_AUTH: The remote "nas" was not added: The SMB remote smb:\/\/lifeboat-smb:\*\*\*@\S+ refused the credentials/)
    assert.match(screen, /Password +•{10}\n/, `the password is kept, hidden:\n${screen}`)
    // Back up to the password (sub-folder → share → host → password), cleared with ctrl-u, typed again.
    tmux.keys('Up', 'Up', 'Up')
    await tmux.press(['C-u'], /› Password +█/)
    tmux.type(samba.password)
    await tmux.waitFor(new RegExp(`Password +•{${samba.password.length}}█`))
    screen = await tmux.press(['Enter'], /✔ ok +nas +smb/)
    screen = await tmux.press(['i'], /Remote nas\n.*type +SMB/)
    assert.match(screen, /free space +[\d.]+ [KMGT]iB free of [\d.]+ [KMGT]iB/)
    screen = await tmux.press(['t'], /last test +write [\d.]+ MiB\/s, read [\d.]+ MiB\/s \(64 MiB probe\)/)
    await tmux.press(['Escape'], 'URL / problem')

    // NFS: the export's folder, its ports, and a UID mistyped first.
    ganesha.urlFor('tui')
    await tmux.press(['a'], /Type +‹ local folder ›/)
    await tmux.press(['Right'], /MOUNT port/)
    await field('export', /Name +export/)
    await field('127.0.0.1', /Host +127\.0\.0\.1/)
    await field(String(ganesha.port), new RegExp(`Port +${ganesha.port}█`))
    await field(`${ganesha.exportPath}/tui`, /Export path +\S+\/tui█/)
    await field('root', /UID must be a whole number from 0 to 4294967295 \(as id -u shows it\)\./)
    await tmux.press(['C-u'], /› UID +█/)
    tmux.type('0')
    await field('0', /GID +0/)
    screen = await field(String(ganesha.mountPort), new RegExp(`MOUNT port +${ganesha.mountPort}█`))
    // The URL wraps at 80 columns: read it whole.
    assert.match(screen.replace(/\n/g, ''), new RegExp(`URL: ?nfs://127\\.0\\.0\\.1:${ganesha.port}:${ganesha.exportPath}/tui\\?uid=0&gid=0&mountPort=${ganesha.mountPort}`))
    screen = await tmux.press(['Enter'], /✔ ok +export +nfs/)
    await tmux.press(['Down'], /›✔ ok +export/)
    screen = await tmux.press(['i'], /Remote export\n.*type +NFS/)
    assert.match(screen, /free space +[\d.]+ [KMGT]iB free of [\d.]+ [KMGT]iB/)
    assert.match(screen, /locks +lock folder/)
    await tmux.press(['Escape'], 'URL / problem')
  } finally {
    tmux.kill()
    daemon?.child.kill('SIGTERM')
    await daemon?.exited
    await Promise.all([samba.cleanup(), ganesha.cleanup()])
    await dir.cleanup()
  }
})
