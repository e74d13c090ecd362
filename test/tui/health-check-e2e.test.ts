// Health checks in a real terminal (tmux) against a real daemon and the lab, by keys only: a job whose two VMs are
// checked after their backup (one with a guest agent, one without) is run from the jobs screen; the runs list shows
// the run successful with its failed check beside it, the tree opens on the failed check; then the restore screen
// shows the good point as checked and `h` health-checks it by hand, the checked VMs gone from the pool afterwards.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DaemonClient } from '../../source/client/index.ts'
import { requireTool, tempDir } from '../helpers/tools.ts'
import { Tmux, until } from '../helpers/tmux.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
const lifeboat = join(root, 'bin/lifeboat.js')

function startLab(dataDir: string): Promise<{ child: ChildProcess; pools: Array<{ url: string; username: string; password: string; poolUuid: string }> }> {
  const child = spawn(process.execPath, [lifeboat, 'lab', 'serve', '--fixture', 'tiny', '--json', '--data', dataDir], { stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    child.once('exit', code => reject(new Error(`the lab exited (${code}) before listening`)))
    createInterface({ input: child.stdout! }).once('line', line => resolve({ child, pools: JSON.parse(line).pools }))
  })
}

test('e2e in tmux: a run whose check failed reads success with the failed check beside it; h checks a restore point by hand', { timeout: 180_000 }, async context => {
  requireTool('tmux', 'tmux')
  const dir = await tempDir('lifeboat-tui-check-')
  const socket = join(dir.path, 'lifeboat.sock')
  const children: ChildProcess[] = []
  const tmux = new Tmux(`lifeboat-check-${process.pid}`)
  let client: DaemonClient | undefined
  try {
    const lab = await startLab(join(dir.path, 'lab'))
    children.push(lab.child)
    const daemon = spawn(process.execPath, [lifeboat, 'daemon', '--data', join(dir.path, 'state'), '--socket', socket], { stdio: 'ignore' })
    children.push(daemon)
    await until('the daemon socket', () => (existsSync(socket) ? true : undefined))
    client = await DaemonClient.connect(socket)
    const pool = lab.pools[0]!
    await client.call('pool.add', { url: pool.url, username: pool.username, password: pool.password })
    await mkdir(join(dir.path, 'remote'))
    await client.call('remote.add', { name: 'lab', url: `file://${join(dir.path, 'remote')}` })
    const vms = await until('the pool VMs', async () => {
      const list = await client!.call('vm.list')
      return list.length >= 2 ? list : undefined
    })
    const vmsBefore = vms.length
    await client.call('job.create', { job: {
      name: 'checked', mode: 'delta', vms: { uuids: vms.map(vm => vm.uuid) }, remotes: ['lab'],
      settings: { healthCheckSr: 'Local storage', healthCheckTimeout: '4s' },
      schedules: [{ name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 2 } }],
    } })

    tmux.start(`CI=false ${process.execPath} --import tsx ${join(root, 'test/tui/start-tui.ts')} ${socket}`)
    await tmux.waitFor(/› +checked/)
    await tmux.press(['r'], 'run checked: started')
    tmux.keys(':')
    tmux.type('runs')
    await tmux.press(['Enter'], 'Lifeboat ▸ Runs')
    const runs = await tmux.waitFor(/✔ success +✖ +checked/, 60_000)
    context.diagnostic(`the runs list:\n${runs}`)
    const tree = await tmux.press(['Enter'], 'HEALTH_CHECK_TIMEOUT')
    context.diagnostic(`the run's tree:\n${tree}`)
    assert.match(tree, /✔ success, ✖ health check failed/)
    assert.match(tree, /▾ ✔ backup VM tiny-halted .*· health check failed/)
    assert.match(tree, /✖ health check on SR Local storage/)

    tmux.keys(':')
    tmux.type('restore')
    await tmux.press(['Enter'], '[Remote]')
    await tmux.waitFor('›lab')
    await tmux.press(['Enter'], /›tiny-halted/)
    await tmux.press(['Down', 'Enter'], /\[Restore point\][\s\S]*›\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +delta +\S+ \S+ +✔ passed +never +checked/)
    await tmux.press(['h'], '[Target SR]')
    await tmux.waitFor('Local storage')
    await tmux.press(['Enter'], 'Press enter to check')
    const run = await tmux.press(['Enter'], /✔ success health check/)
    context.diagnostic(`the manual check:\n${run}`)
    const list = await client.call('run.list', { limit: 1 })
    assert.deepEqual([list[0]!.kind, list[0]!.status], ['health check', 'success'])
    const left = await until('the checked VMs destroyed', async () => {
      const now = await client!.call('vm.list')
      return now.length === vmsBefore ? now : undefined
    })
    assert.equal(left.length, vmsBefore, 'no checked VM is left on the pool')
  } finally {
    tmux.kill()
    client?.close()
    for (const child of children) child.kill('SIGTERM')
    await Promise.all(children.map(child => new Promise(resolve => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)))))
    await dir.cleanup()
  }
})
