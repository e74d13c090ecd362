// A verify job made in the wizard in a real terminal (tmux) against a real daemon and the lab, by keys only: a
// VM backed up to a remote, then a verify job reading every block of that remote's backups of it, saved, run
// from the jobs screen; the daemon then holds the job as made, and the backup is recorded verified with its data read.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startLab, type Lab } from '../../source/lab/index.ts'
import { requireTool, tempDir } from '../helpers/tools.ts'
import { Tmux, until } from '../helpers/tmux.ts'
import { addLabPoolAndRemote, cli, cliJson, startDaemon, type DaemonProcess } from '../daemon/helpers.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))

test('e2e in tmux: a verify job made in the wizard (read data, one VM, one remote), run from the jobs screen, verifies the backup', { timeout: 240_000 }, async context => {
  requireTool('tmux', 'tmux')
  const dir = await tempDir('lifeboat-tui-verify-')
  const tmux = new Tmux(`lifeboat-verify-e2e-${process.pid}`)
  let lab: Lab | undefined
  let daemon: DaemonProcess | undefined
  try {
    lab = await startLab({ dataDir: join(dir.path, 'lab'), fixture: 'tiny' })
    daemon = await startDaemon(join(dir.path, 'state'))
    const vms = await addLabPoolAndRemote(daemon.socket, lab, dir.path)
    await cliJson(daemon.socket, ['job', 'create', '--name', 'nightly', '--mode', 'delta', '--vm', vms['tiny-halted']!, '--remote', 'local'])
    assert.equal((await cli(daemon.socket, ['job', 'run', 'nightly', '--wait'])).code, 0, 'the backup runs')

    tmux.start(`CI=false ${process.execPath} --import tsx ${join(root, 'test/tui/start-tui.ts')} ${daemon.socket}`)
    await tmux.waitFor('nightly')
    await tmux.press(['n'], '[Job]')
    tmux.type('check')
    tmux.keys('Down', 'Down', 'Right')
    await tmux.press(['Right'], '‹ verify ›')
    await tmux.press(['Up', 'Space'], '[x] every block read back')
    let screen = await tmux.press(['Enter'], '[Where]')
    assert.match(screen, /Job → \[Where\] → Which VMs/)
    await tmux.waitFor('[ ] remote local')
    await tmux.press(['Space'], 'Verify with read data (1 remote)')
    screen = await tmux.press(['Enter'], 'VMs with backups on local')
    assert.match(screen, /\[ \] tiny-halted +1 backup on local/)
    await tmux.press(['Space'], '[x] tiny-halted')
    screen = await tmux.press(['Enter'], '[When]')
    assert.doesNotMatch(screen, /Keep /)
    screen = await tmux.press(['Enter'], '[How]')
    assert.doesNotMatch(screen, /VMs at once/)
    screen = await tmux.press(['Enter'], 'Press enter to save')
    context.diagnostic(`the review:\n${screen}`)
    assert.match(screen, /Does: Verify with read data \(1 remote\)/)
    await tmux.press(['Enter'], 'create check: done')

    const jobs = await cliJson<Array<{ job: { name: string; type: string; readData?: boolean; vms: unknown; remotes: string[] } }>>(daemon.socket, ['job', 'list'])
    const made = jobs.find(info => info.job.name === 'check')?.job
    assert.deepEqual({ type: made?.type, readData: made?.readData, vms: made?.vms, remotes: made?.remotes }, { type: 'verify', readData: true, vms: { uuids: [vms['tiny-halted']] }, remotes: ['local'] })

    // The jobs screen names it for what it does, and runs it.
    tmux.keys('/')
    tmux.type('check')
    await tmux.press(['Enter'], /› +check +verify +1 VM +local/)
    await tmux.press(['r'], 'run check: started')
    const [point] = await until('the backup verified', async () => {
      const points = await cliJson<Array<{ verification?: { status: string; readData: boolean } }>>(daemon!.socket, ['backup', 'list', '--remote', 'local'])
      return points[0]?.verification?.status === 'verified' ? points : undefined
    }, 120_000)
    assert.equal(point?.verification?.readData, true, 'every block was read')
  } finally {
    tmux.kill()
    if (daemon !== undefined) {
      daemon.child.kill('SIGTERM')
      await daemon.exited
    }
    await lab?.stop()
    await dir.cleanup()
  }
})
