// The TUI in a real terminal (tmux) against a real daemon and the lab, driven by keys only: the wizard
// left with esc, then a delta job with a smart selection made in it, run, watched in the lanes and
// cancelled (cancelled in the tree and in `run list --status cancelled`), run again, its log tree opened,
// and its backup restored to the DR pool's SR, the TUI naming the new VM; the lab must then hold it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
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

interface LabPool {
  name: string
  url: string
  username: string
  password: string
  poolUuid: string
}

function startLab(dataDir: string): Promise<{ child: ChildProcess; pools: LabPool[] }> {
  const child = spawn(process.execPath, [lifeboat, 'lab', 'serve', '--fixture', 'pair', '--json', '--data', dataDir], { stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    child.once('exit', code => reject(new Error(`the lab exited (${code}) before listening`)))
    createInterface({ input: child.stdout! }).once('line', line => resolve({ child, pools: (JSON.parse(line) as { pools: LabPool[] }).pools }))
  })
}

test('e2e in tmux: wizard left with esc → wizard → run → lanes → cancel → run → log tree → restore to the DR pool, by keys only', { timeout: 180_000 }, async context => {
  requireTool('tmux', 'tmux')
  const dir = await tempDir('lifeboat-tui-e2e-')
  const socket = join(dir.path, 'lifeboat.sock')
  const children: ChildProcess[] = []
  const tmux = new Tmux(`lifeboat-e2e-${process.pid}`)
  let client: DaemonClient | undefined
  try {
    const lab = await startLab(join(dir.path, 'lab'))
    children.push(lab.child)
    const [main, dr] = lab.pools
    assert.ok(main !== undefined && dr !== undefined, 'the pair fixture has two pools')
    // Slow exports down so that the lanes can be watched while the backup runs.
    await fetch(`${main.url}/_sim/knobs`, { method: 'POST', body: JSON.stringify({ exportPerStreamMiBs: 1 }) })

    const daemon = spawn(process.execPath, [lifeboat, 'daemon', '--data', join(dir.path, 'state'), '--socket', socket], { stdio: 'ignore' })
    children.push(daemon)
    await until('the daemon socket', () => (existsSync(socket) ? true : undefined))
    client = await DaemonClient.connect(socket)
    for (const pool of [main, dr]) await client.call('pool.add', { url: pool.url, username: pool.username, password: pool.password })
    await mkdir(join(dir.path, 'remote'))
    await client.call('remote.add', { name: 'lab', url: `file://${join(dir.path, 'remote')}` })
    await until('both pools connected', async () => ((await client!.call('pool.list')).every(p => p.status === 'connected') ? true : undefined))

    tmux.start(`CI=false ${process.execPath} --import tsx ${join(root, 'test/tui/start-tui.ts')} ${socket}`)
    await tmux.waitFor('No jobs yet')

    // The wizard opened and left with esc from its first field (a text field: esc is not typed into it).
    await tmux.press(['n'], '[Job]')
    await tmux.press(['Escape'], 'No jobs yet')
    // With something typed, esc asks before discarding it.
    await tmux.press(['n'], '[Job]')
    tmux.type('draft')
    await tmux.press(['Escape'], 'discard this new job? [y/n]')
    await tmux.press(['y'], 'No jobs yet')

    // The wizard: name, then a smart selection (pool "lab", tag prod) with its live preview.
    await tmux.press(['n'], '[Job]')
    tmux.type('e2e-delta')
    await tmux.press(['Enter'], 'Smart selection')
    const pools = await tmux.waitFor(/\[ \] lab/)
    const labRow = pools.split('\n').findIndex(line => /\[ \] lab$/.test(line.trim()))
    const drRow = pools.split('\n').findIndex(line => /\[ \] dr$/.test(line.trim()))
    if (drRow !== -1 && drRow < labRow) tmux.keys('Down')
    await tmux.press(['Space'], /\[x\] lab/)
    await tmux.press(['Tab'], /› Tags/)
    tmux.type('prod')
    const preview = await tmux.waitFor('Matches 1 VM now')
    assert.match(preview, /tiny-running · lab · Running · prod/)
    await tmux.press(['Enter'], '[Where]')
    await tmux.waitFor('[ ] remote lab')
    await tmux.press(['Space'], '[x] remote lab')
    await tmux.press(['Enter'], '[When]')
    await tmux.press(['Enter'], '[How]')
    await tmux.press(['Enter'], 'Press enter to save')
    await tmux.press(['Enter'], 'create e2e-delta: done')

    // Run it and watch the lanes.
    await tmux.press(['r'], 'run e2e-delta: started')
    tmux.keys(':')
    tmux.type('lanes')
    await tmux.press(['Enter'], 'Lifeboat ▸ Lanes')
    // The export holds one of the 12 VDI slots and its progress moves.
    const lanes = await tmux.waitFor(/VDI exports +\[■·+\] 1\/12[\s\S]*tiny-running[^\n]* \d+%/)
    assert.match(lanes, /Pool lab/)
    context.diagnostic(`lanes while the backup runs:\n${lanes}`)
    const progress = (screen: string) => /tiny-running[^\n]* (\d+)%/.exec(screen)?.[1]
    const first = progress(lanes)
    await until('the export progress to move', () => {
      const now = progress(tmux.screen())
      return now !== undefined && now !== first ? now : undefined
    })

    // Cancel it from the jobs screen: cancelled in the tree and for run list --status cancelled.
    tmux.keys(':')
    tmux.type('jobs')
    await tmux.press(['Enter'], /⟳ +e2e-delta/)
    await tmux.press(['c'], 'Cancel the running run of e2e-delta? [y/n]')
    await tmux.press(['y'], 'Cancel asked')
    tmux.keys(':')
    tmux.type('logs')
    await tmux.press(['Enter'], 'Lifeboat ▸ Runs')
    await tmux.waitFor(/⏸ cancelled +\S+ +e2e-delta/, 60_000)
    const cancelledTree = await tmux.press(['Enter'], /⏸ cancelled backup/)
    assert.doesNotMatch(cancelledTree, /✖|ABORT_ERR/)
    const cancelledRunId = /^(\S+)$/m.exec(cancelledTree.split('\n')[2]!.trim())?.[1]
    context.diagnostic(`the cancelled run's tree:\n${cancelledTree}`)
    const listed = spawnSync(process.execPath, [lifeboat, 'run', 'list', '--status', 'cancelled', '--json', '--socket', socket], { encoding: 'utf8' })
    assert.equal(listed.status, 0, listed.stderr)
    const cancelledRuns = JSON.parse(listed.stdout) as Array<{ runId: string; jobName?: string; status: string }>
    assert.equal(cancelledRuns.length, 1, listed.stdout)
    assert.equal(cancelledRuns[0]!.jobName, 'e2e-delta')
    assert.equal(cancelledRuns[0]!.status, 'cancelled')
    assert.equal(cancelledRuns[0]!.runId, cancelledRunId)

    // Run it again, to the end.
    await fetch(`${main.url}/_sim/knobs`, { method: 'POST', body: JSON.stringify({ exportPerStreamMiBs: 64 }) })
    tmux.keys(':')
    tmux.type('jobs')
    await tmux.press(['Enter'], /› +e2e-delta +delta .*⏸ cancelled/)
    await tmux.press(['r'], 'run e2e-delta: started')

    // The log tree of the run, once it is over.
    tmux.keys(':')
    tmux.type('logs')
    await tmux.press(['Enter'], 'Lifeboat ▸ Runs')
    await tmux.waitFor(/✔ success +\S+ +e2e-delta/, 60_000)
    const tree = await tmux.press(['Enter'], /✔ success backup/)
    assert.match(tree, /▾ ✔/)
    // Unfold the VM: its subtasks (snapshot, export, transfer…) with their figures.
    const unfolded = await tmux.press(['Down', 'Right'], /▾ ✔ backup VM tiny-running[^\n]*\n {5}. ✔ \S/)
    context.diagnostic(`the run's task tree:\n${unfolded}`)

    // Restore the backup to the DR pool's SR.
    tmux.keys(':')
    tmux.type('restore')
    await tmux.press(['Enter'], '[Remote]')
    // Each Enter waits for the rows it picks from: the daemon answers after the screen is drawn.
    await tmux.waitFor('›lab')
    await tmux.press(['Enter'], /›tiny-running/)
    await tmux.press(['Enter'], /\[Restore point\][\s\S]*›\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +delta +\S+ \S+ .*e2e-delta/)
    await tmux.press(['Enter'], '[Target SR]')
    await tmux.waitFor('DR storage')
    tmux.keys('/')
    tmux.type('DR storage')
    await tmux.press(['Enter'], '/DR storage')
    await tmux.press(['Enter'], 'New VM name')
    await tmux.press(['Enter'], 'Press enter to restore')
    await tmux.press(['Enter'], /Lifeboat ▸ Restore ▸ Run[\s\S]*restore tiny-running: started/)
    const restoreScreen = await tmux.waitFor('✔ success restore', 60_000)
    context.diagnostic(`the restore:\n${restoreScreen}`)

    const restored = await until('the restored VM on the DR pool', async () => (await client!.call('vm.list', { pool: dr.poolUuid })).find(vm => vm.name.startsWith('tiny-running')))
    assert.equal(restored.poolId, dr.poolUuid)
    // The TUI names the VM it created, with its uuid.
    const named = await tmux.waitFor('Restored as the VM')
    assert.ok(named.replace(/\n/g, ' ').includes(`Restored as the VM "${restored.name}" (${restored.uuid})`), named)

    // A resize redraws the whole screen at the new size: header on the first row, footer on the last but one.
    spawnSync('tmux', ['resize-window', '-t', tmux.session, '-x', '100', '-y', '30'])
    const resized = await until('the redraw at 100×30', () => {
      const rows = tmux.screen().split('\n')
      return rows[0]?.startsWith('Lifeboat ▸') === true && /q quit/.test(rows[28] ?? '') ? rows : undefined
    })
    assert.match(resized[0]!, /● connected$/)
  } finally {
    tmux.kill()
    client?.close()
    for (const child of children) child.kill('SIGTERM')
    await Promise.all(children.map(child => new Promise(resolve => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)))))
    await dir.cleanup()
  }
})
