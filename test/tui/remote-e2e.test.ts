// The remote form in a real terminal (tmux) against a real daemon, by keys only: a local folder added
// through the form (a refused folder first: the coded sentence shown, what was typed kept), its info, and
// its test with the speeds and latencies.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DaemonClient } from '../../source/client/index.ts'
import { requireTool, tempDir } from '../helpers/tools.ts'
import { Tmux } from '../helpers/tmux.ts'
import { startDaemon, type DaemonProcess } from '../daemon/helpers.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))

test('e2e in tmux: a remote added through the form, its info and its test', { timeout: 180_000 }, async () => {
  requireTool('tmux', 'tmux')
  const dir = await tempDir('lifeboat-tui-remote-')
  const tmux = new Tmux(`lifeboat-remote-e2e-${process.pid}`)
  let daemon: DaemonProcess | undefined
  try {
    daemon = await startDaemon(join(dir.path, 'state'))
    const folder = join(dir.path, 'backups')
    tmux.start(`CI=false ${process.execPath} --import tsx ${join(root, 'test/tui/start-tui.ts')} ${daemon.socket}`)
    await tmux.waitFor('No jobs yet')
    tmux.keys(':')
    tmux.type('remotes')
    await tmux.press(['Enter'], 'No remotes: press a to add one.')
    await tmux.press(['a'], 'Add a remote')
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
