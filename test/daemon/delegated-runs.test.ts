// Delegated runs end to end: the lab over HTTP, a real sshd on loopback, the proxy service and the appliance's
// daemon as their own processes. A full and a delta job that name the proxy run there: the appliance's log holds
// the whole tree (seen live while it goes), the restore points restore byte-exact, and the appliance's daemon
// reads under 1% of the bytes backed up (the same job run locally reads them all: the counter can fail); a
// cancel on the appliance stops the run on the proxy. The faults: the ssh channel dropped mid-run (the run goes on
// and the appliance catches up), the proxy killed (the run ends interrupted at once), the appliance's daemon
// killed or stopped mid-run (the next start follows the run again and its log ends whole).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { join } from 'node:path'
import { DaemonClient } from '../../source/client/index.ts'
import { startLab, type Lab } from '../../source/lab/index.ts'
import { PoolConnection, TEMPORARY_SNAPSHOT_NAME } from '../../source/xapi/index.ts'
import { vmDisks } from '../../source/xapi/vm.ts'
import type { LanesSnapshot, TaskNode } from '../../source/protocol/methods.ts'
import { tempDir } from '../helpers/tools.ts'
import { startSshd, type Sshd } from '../helpers/sshd.ts'
import { bridgeKeyLine, startProxy, type ProxyProcess } from '../helpers/proxy.ts'
import { describeFailure, diskDigest, tasksOf } from '../engine/helpers.ts'
import { addLabPoolAndRemote, cli, cliJson, startDaemon, waitUntil, type DaemonProcess } from './helpers.ts'

const MiB = 1024 * 1024

let dir: { path: string; cleanup: () => Promise<void> }
let lab: Lab
let sshd: Sshd
let proxy: ProxyProcess
let daemon: DaemonProcess
let conn: PoolConnection
let vmUuid: string
let vdiUuid: string
/** The tiny pool's own VMs (restores add copies of the same names). */
let fixtureVms: string[]

before(async () => {
  dir = await tempDir('lifeboat-delegated-')
  ;[lab, sshd] = await Promise.all([startLab({ dataDir: join(dir.path, 'lab'), fixture: 'tiny' }), startSshd(join(dir.path, 'sshd'))])
  ;[proxy, daemon] = await Promise.all([startProxy(join(dir.path, 'proxy')), startDaemon(join(dir.path, 'daemon'))])
  const pool = lab.pools[0]!
  await addLabPoolAndRemote(daemon.socket, lab, dir.path)
  const { publicKey } = await cliJson<{ publicKey: string }>(daemon.socket, ['proxy', 'key'])
  await sshd.authorize([bridgeKeyLine(publicKey, proxy.dataDir)])
  const added = await cliJson(daemon.socket, ['proxy', 'add', 'edge', `ssh://${sshd.user}@127.0.0.1:${sshd.port}`])
  assert.equal(added.problem, undefined)
  conn = await PoolConnection.connect(pool)
  const vm = conn.all('VM').find(record => record.name_label === 'tiny-halted' && record.is_a_snapshot !== true)!
  vmUuid = vm.uuid as string
  fixtureVms = conn.all('VM').filter(record => record.is_a_snapshot !== true && record.is_a_template !== true && String(record.name_label).startsWith('tiny-')).map(record => record.uuid as string)
  // Enough data that 1% of it stands well above what the daemon reads of the run's events.
  vdiUuid = vmDisks(conn, vm)[0]!.vdi.uuid as string
  await lab.pools[0]!.control.writeVdi(vdiUuid, { offset: 0, length: 15 * MiB, seed: 7 })
})

after(async () => {
  await conn?.disconnect()
  daemon.child.kill('SIGTERM')
  await daemon.exited
  await proxy.stop()
  await sshd.stop()
  await lab.stop()
  await dir.cleanup()
})

/** A job of the one VM to the local remote, daily, keeping 3; `more` overrides or adds fields of the job file. */
async function createJob(name: string, mode: 'full' | 'delta', proxyName?: string, more: Record<string, unknown> = {}): Promise<void> {
  const file = join(dir.path, `${name}.json`)
  await writeFile(file, JSON.stringify({
    name, mode, vms: { uuids: [vmUuid] }, remotes: ['local'], ...(proxyName !== undefined && { proxy: proxyName }),
    schedules: [{ name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 3 } }],
    ...more,
  }))
  await cliJson(daemon.socket, ['job', 'create', '--file', file])
}

/** Bytes the daemon's process has read (sockets and files), from /proc. */
async function daemonReadBytes(): Promise<number> {
  return Number(/^rchar: (\d+)$/m.exec(await readFile(`/proc/${daemon.child.pid}/io`, 'utf8'))![1])
}

async function runJob(name: string): Promise<{ tree: TaskNode; read: number; size: number }> {
  const before = await daemonReadBytes()
  const run = await cli(daemon.socket, ['job', 'run', name, '--wait', '--json'])
  const read = (await daemonReadBytes()) - before
  const { tree } = JSON.parse(run.stdout) as { tree: TaskNode }
  assert.equal(run.code, 0, describeFailure(tree))
  const size = tasksOf(tree).filter(task => task.message === 'transfer').reduce((sum, task) => sum + ((task.result as { size?: number } | undefined)?.size ?? 0), 0)
  return { tree, read, size }
}

/** Restores the point onto the pool's SR; the restored VM's disk digest. */
async function restoredDigest(backupId: string, remote = 'local'): Promise<string> {
  const [sr] = await cliJson(daemon.socket, ['sr', 'list'])
  const restored = await cliJson(daemon.socket, ['restore', '--remote', remote, '--backup', backupId, '--sr', sr.uuid, '--wait'])
  assert.equal(restored.tree.status, 'success', describeFailure(restored.tree))
  await waitUntil('the restored VM in the cache', async () => (conn.all('VM').some(vm => vm.uuid === restored.tree.result.vmUuid) ? true : undefined))
  const copy = conn.all('VM').find(vm => vm.uuid === restored.tree.result.vmUuid)!
  return diskDigest(conn, vmDisks(conn, copy)[0]!.vdi.$ref)
}

/** The VM's disk as it is now. */
async function sourceDigest(): Promise<string> {
  return diskDigest(conn, vmDisks(conn, conn.all('VM').find(vm => vm.uuid === vmUuid)!)[0]!.vdi.$ref)
}

async function restoredMatches(backupId: string): Promise<void> {
  assert.equal(await restoredDigest(backupId), await sourceDigest(), `the restore of ${backupId} has the VM's disk`)
}

test('a job that names a proxy that does not exist is refused', async () => {
  const file = join(dir.path, 'bad.json')
  await writeFile(file, JSON.stringify({ name: 'bad', mode: 'full', vms: { uuids: [vmUuid] }, remotes: ['local'], proxy: 'nowhere', schedules: [{ name: 'daily', cron: '0 3 * * *', timezone: 'UTC' }] }))
  const result = await cli(daemon.socket, ['job', 'create', '--file', file])
  assert.equal(result.code, 1)
  assert.match(result.stderr, /- proxy: No proxy is named "nowhere"/)
})

test('a full and a delta job delegated to the proxy: the tree in the appliance, restores byte-exact, no disk byte through the appliance', async () => {
  await createJob('local-full', 'full')
  const local = await runJob('local-full')
  assert.ok(local.read >= local.size, `a local run reads the export through the daemon (${local.read} bytes read, ${local.size} backed up): the counter sees disk bytes`)

  await createJob('edge-full', 'full', 'edge')
  await createJob('edge-delta', 'delta', 'edge')
  for (const name of ['edge-full', 'edge-delta', 'edge-delta']) {
    const { tree, read, size } = await runJob(name)
    assert.equal(tree.status, 'success')
    assert.equal(tree.data?.proxy, 'edge')
    assert.ok(tasksOf(tree).some(task => task.message === 'transfer' && task.parentId !== undefined), 'the tree holds the transfers made on the proxy')
    assert.ok(size > 10 * MiB || name === 'edge-delta', `${name}: ${size} bytes backed up`)
    assert.ok(read < Math.max(size, 15 * MiB) / 100, `${name}: the daemon read ${read} bytes for ${size} backed up`)
    const [summary] = await cliJson(daemon.socket, ['run', 'list', '--job', name, '--limit', '1'])
    assert.equal(summary.proxy, 'edge')
  }
  // The tables say where each job runs and each run ran ('-': the appliance).
  const runTable = (await cli(daemon.socket, ['run', 'list'])).stdout
  assert.match(runTable, /^RUN +KIND +JOB +PROXY +SCHEDULE/m)
  assert.match(runTable, / edge-delta +edge +daily /)
  assert.match(runTable, / local-full +- +daily /)
  const jobTable = (await cli(daemon.socket, ['job', 'list'])).stdout
  assert.match(jobTable, / edge-full +full backup +edge +local /)
  assert.match(jobTable, / local-full +full backup +- +local /)
  const points = await cliJson<Array<{ id: string; mode: string; jobId: string }>>(daemon.socket, ['backup', 'list', '--remote', 'local', '--vm', vmUuid])
  const jobs = await cliJson<Array<{ job: { id: string; name: string } }>>(daemon.socket, ['job', 'list'])
  const ids = new Set(jobs.filter(info => info.job.name.startsWith('edge-')).map(info => info.job.id))
  const delegated = points.filter(point => ids.has(point.jobId))
  assert.equal(delegated.length, 3)
  for (const point of delegated) await restoredMatches(point.id)
})

test('a remote that lives on the proxy: written by the proxy\'s runs, listed, tested, verified and restored by the appliance through the proxy; a job on the appliance cannot use it', async () => {
  // The proxy host's own folder (one machine here: the appliance never opens it itself, it asks the proxy).
  const folder = join(dir.path, 'proxy-host-backups')
  await mkdir(folder)
  const added = await cliJson(daemon.socket, ['remote', 'add', 'edge-store', `file://${folder}`, '--proxy', 'edge'])
  assert.equal(added.proxy, 'edge', 'the remote is on the proxy')
  assert.equal(added.status, 'ok', 'the proxy opened it')
  assert.match((await cli(daemon.socket, ['remote', 'list'])).stdout, /^edge-store +file +edge +file:\/\//m, 'remote list names the proxy')
  assert.match((await cli(daemon.socket, ['remote', 'info', 'edge-store'])).stdout, /lives on +the proxy "edge"/, 'remote info says where it lives')
  const tested = await cli(daemon.socket, ['remote', 'test', 'edge-store', '--mib', '4'])
  assert.equal(tested.code, 0, `remote test through the proxy: ${tested.stderr}`)

  const file = join(dir.path, 'appliance-to-edge.json')
  await writeFile(file, JSON.stringify({ name: 'appliance-to-edge', mode: 'delta', vms: { uuids: [vmUuid] }, remotes: ['edge-store'], schedules: [{ name: 'daily', cron: '0 3 * * *', timezone: 'UTC' }] }))
  const refused = await cli(daemon.socket, ['job', 'create', '--file', file])
  assert.equal(refused.code, 1, 'a job on the appliance that writes to a remote on a proxy is refused')
  assert.match(refused.stderr, /remotes\.0: The remote "edge-store" lives on the proxy "edge": a backup job that writes to it runs there/)
  assert.equal((await cli(daemon.socket, ['proxy', 'remove', 'edge'])).code, 1, 'a proxy a remote lives on is not removed')

  await createJob('edge-own', 'delta', 'edge', { remotes: ['edge-store'] })
  const digests: string[] = []
  for (let i = 0; i < 2; i++) {
    await lab.pools[0]!.control.writeVdi(vdiUuid, { offset: (i + 2) * MiB, length: MiB, seed: 40 + i })
    const { tree, read, size } = await runJob('edge-own')
    assert.equal(tree.data?.proxy, 'edge', 'the run was delegated')
    assert.ok(read < Math.max(size, 15 * MiB) / 100, `the daemon read ${read} bytes for ${size} backed up on the proxy's remote`)
    digests.push(await sourceDigest())
  }
  const points = await cliJson<Array<{ id: string; mode: string }>>(daemon.socket, ['backup', 'list', '--remote', 'edge-store', '--vm', vmUuid])
  assert.equal(points.length, 2, 'the appliance lists the two restore points through the proxy')
  assert.ok((await readdir(join(folder, 'xo-vm-backups', vmUuid))).some(name => name.endsWith('.json')), 'the backups are in the proxy host\'s folder')
  const verified = await cli(daemon.socket, ['remote', 'verify', 'edge-store', '--read-data'])
  assert.equal(verified.code, 0, `verify reads every block through the proxy: ${verified.stdout}${verified.stderr}`)
  // The second is a delta: its restore reads the chain through the proxy. Each has the disk of its own run.
  for (const [index, point] of points.entries()) assert.equal(await restoredDigest(point.id, 'edge-store'), digests[index], `the restore of ${point.id} through the proxy is byte-exact`)

  // A full job to the proxy's remote too: its XVA restores byte-exact through the proxy.
  await createJob('edge-own-full', 'full', 'edge', { remotes: ['edge-store'] })
  const full = await runJob('edge-own-full')
  assert.ok(full.read < Math.max(full.size, 15 * MiB) / 100, `the daemon read ${full.read} bytes for a full backup of ${full.size} on the proxy's remote`)
  const fullPoints = await cliJson<Array<{ id: string; mode: string }>>(daemon.socket, ['backup', 'list', '--remote', 'edge-store', '--vm', vmUuid])
  const xva = fullPoints.find(point => point.mode === 'full')
  assert.ok(xva !== undefined, 'the full backup is listed through the proxy')
  assert.equal(await restoredDigest(xva.id, 'edge-store'), await sourceDigest(), 'the full restore point restores byte-exact through the proxy')
})

test('a delegated run is seen live in the appliance, and a cancel there stops it on the proxy', async () => {
  await createJob('edge-slow', 'full', 'edge')
  lab.pools[0]!.control.setKnobs({ exportPerStreamMiBs: 1 })
  const client = await DaemonClient.connect(daemon.socket)
  try {
    const seen: string[] = []
    await client.subscribe(['tasks'])
    client.onNotification('task.event', ({ event }) => {
      if (event.type === 'start') seen.push(event.properties.name)
    })
    const { runId } = await cliJson(daemon.socket, ['job', 'run', 'edge-slow'])
    await waitUntil('the transfer seen live', async () => (seen.includes('transfer') ? true : undefined), 120_000)
    const live = await cliJson(daemon.socket, ['run', 'show', runId])
    assert.equal(live.summary.status, 'pending')
    assert.ok(tasksOf(live.tree).some(task => task.message === 'transfer' && task.status === 'pending'), 'the live tree shows the transfer going')
    assert.equal((await cli(daemon.socket, ['run', 'cancel', runId])).code, 0)
    const ended = await waitUntil('the run cancelled', async () => {
      const { summary } = await cliJson(daemon.socket, ['run', 'show', runId])
      return summary.status === 'pending' ? undefined : summary
    }, 120_000)
    assert.equal(ended.status, 'cancelled')
    await waitUntil('the proxy says it ended', async () => (proxy.log().includes(`(the appliance's ${runId}) ended cancelled`) ? true : undefined))
  } finally {
    client.close()
    lab.pools[0]!.control.setKnobs({ exportPerStreamMiBs: undefined })
  }
})

async function jobIdOf(name: string): Promise<string> {
  const jobs = await cliJson<Array<{ job: { id: string; name: string } }>>(daemon.socket, ['job', 'list'])
  return jobs.find(info => info.job.name === name)!.job.id
}

/** Starts the job (already created) with the export slowed, and waits until its transfer is seen going in the appliance. */
async function startSlowRun(name: string): Promise<string> {
  lab.pools[0]!.control.setKnobs({ exportPerStreamMiBs: 1 })
  const { runId } = await cliJson(daemon.socket, ['job', 'run', name])
  await waitUntil('the transfer going', async () => {
    const { tree } = await cliJson(daemon.socket, ['run', 'show', runId])
    assert.equal(tree.status, 'pending', `the run ended before its transfer was seen going: ${describeFailure(tree)}`)
    return tasksOf(tree).some(task => task.message === 'transfer' && task.status === 'pending') ? true : undefined
  }, 120_000)
  return runId
}

async function runEnded(runId: string): Promise<{ summary: { status: string }; tree: TaskNode }> {
  return waitUntil('the run ended', async () => {
    const shown = await cliJson(daemon.socket, ['run', 'show', runId])
    return shown.summary.status === 'pending' ? undefined : shown
  }, 180_000)
}

/** The run's log is whole: every task ended, the transfers succeeded with their bytes. */
function assertWhole(tree: TaskNode): void {
  assert.equal(tree.status, 'success', describeFailure(tree))
  assert.deepEqual(tasksOf(tree).filter(task => task.status === 'pending').map(task => task.message), [], 'no task is left pending')
  const transfers = tasksOf(tree).filter(task => task.message === 'transfer')
  assert.ok(transfers.length > 0 && transfers.every(task => task.status === 'success' && ((task.result as { size?: number }).size ?? 0) > 0), 'the transfers are in the log with their bytes')
}

const unslow = () => lab.pools[0]!.control.setKnobs({ exportPerStreamMiBs: undefined })

test('a delegated job\'s timeout stops the run on the proxy and fails it with TIMEOUT in the appliance', async () => {
  await createJob('edge-timeout', 'full', 'edge', { settings: { timeout: '4s' } })
  lab.pools[0]!.control.setKnobs({ exportPerStreamMiBs: 1 })
  try {
    const run = await cli(daemon.socket, ['job', 'run', 'edge-timeout', '--wait', '--json'])
    const { runId, tree } = JSON.parse(run.stdout) as { runId: string; tree: TaskNode }
    assert.equal(run.code, 1, run.stderr)
    assert.equal(tree.status, 'failure', describeFailure(tree))
    assert.equal((tree.result as { code?: string }).code, 'TIMEOUT')
    await waitUntil('the proxy says it ended', async () => (proxy.log().includes(`(the appliance's ${runId}) ended failure`) ? true : undefined))
  } finally {
    unslow()
  }
})

test('the ssh channel drops mid-run: the proxy finishes the run, the appliance re-attaches and its log ends complete', async () => {
  await createJob('edge-drop', 'full', 'edge')
  try {
    const runId = await startSlowRun('edge-drop')
    // The proxy's end of the channel: the bridge sshd runs for the daemon's key.
    await promisify(execFile)('pkill', ['-f', `proxy --stdio --data ${proxy.dataDir}`])
    await waitUntil('the daemon re-attaching', async () => (daemon.log().includes(`run ${runId}: the channel to the proxy "edge" dropped; re-attaching`) ? true : undefined))
    unslow()
    const { summary, tree } = await runEnded(runId)
    assert.equal(summary.status, 'success')
    assertWhole(tree)
    assert.ok(proxy.log().includes(`(the appliance's ${runId}) ended success`), 'the proxy ran the run to its end')
    const points = await cliJson<Array<{ id: string; jobId: string }>>(daemon.socket, ['backup', 'list', '--remote', 'local', '--vm', vmUuid])
    const written = points.filter(point => point.jobId === tree.data?.jobId)
    assert.equal(written.length, 1, 'the run wrote its restore point')
    await restoredMatches(written[0]!.id)
  } finally {
    unslow()
  }
})

test('the proxy dies mid-run: the appliance cleans what the run left and ends it interrupted at once; the next run succeeds', async () => {
  await createJob('edge-killed', 'full', 'edge')
  try {
    const runId = await startSlowRun('edge-killed')
    proxy.child.kill('SIGKILL')
    const { summary, tree } = await runEnded(runId)
    assert.equal(summary.status, 'interrupted')
    assert.equal((tree.result as { code?: string }).code, 'PROXY_RUN_INTERRUPTED', describeFailure(tree))
    assert.deepEqual(tasksOf(tree).filter(task => task.status === 'pending').map(task => task.message), [], 'every task the proxy had going ends interrupted')
    assert.ok(tasksOf(tree).some(task => task.message === 'transfer' && task.status === 'interrupted'), 'the transfer is interrupted')
    // The appliance, which has the credentials, cleaned what the lost run left before ending it.
    const cleaned = tree.infos?.find(info => info.message === 'what the run left was cleaned by the appliance')
    assert.ok(cleaned !== undefined, `the run's log says what was cleaned: ${JSON.stringify(tree.infos)}`)
    const lines = (cleaned.data as { lines: string[] }).lines
    for (const done of ['removed the unexported snapshot', 'lifted the migration block', 'leftover(s) removed']) assert.ok(lines.some(line => line.includes(done)), `${done}: ${lines.join('; ')}`)
    await conn.sync()
    const vm = conn.all('VM').find(record => record.uuid === vmUuid)!
    assert.deepEqual((vm.snapshots as string[]).map(ref => conn.byRef(ref)).filter(snapshot => (snapshot?.other_config as Record<string, string>)['xo:backup:job'] === tree.data?.jobId), [], 'no snapshot of the lost run is left')
    assert.equal((vm.blocked_operations as Record<string, string>).pool_migrate, undefined, 'migration is allowed again')
    unslow()
    proxy = await startProxy(proxy.dataDir)
    const next = await runJob('edge-killed')
    assertWhole(next.tree)
    await conn.sync()
    const left = conn.all('VM').filter(vm => vm.is_a_snapshot === true && vm.name_label === TEMPORARY_SNAPSHOT_NAME)
    assert.deepEqual(left.map(vm => vm.uuid), [], 'no unfinished snapshot is left on the pool')
  } finally {
    unslow()
    if (proxy.child.exitCode !== null || proxy.child.signalCode !== null) proxy = await startProxy(proxy.dataDir)
  }
})

test('the appliance dies mid-run (kill -9), or stops: its next start follows the run on the proxy again, and the log ends whole', async () => {
  await createJob('edge-appliance', 'delta', 'edge')
  const daemonDir = join(dir.path, 'daemon')
  try {
    for (const [index, stop] of (['SIGKILL', 'SIGTERM'] as const).entries()) {
      // A delta of the whole disk each time: long enough under the slowed export to stop the daemon mid-transfer.
      await lab.pools[0]!.control.writeVdi(vdiUuid, { offset: 0, length: 15 * MiB, seed: 100 + index })
      const runId = await startSlowRun('edge-appliance')
      daemon.child.kill(stop)
      await daemon.exited
      if (stop === 'SIGTERM') assert.match(daemon.log(), /1 run\(s\) delegated to proxies go on there/)
      assert.ok(!proxy.log().includes(`(the appliance's ${runId}) ended`), `the run goes on on the proxy after the daemon's ${stop}`)
      daemon = await startDaemon(daemonDir)
      const takenUp = new RegExp(`run ${runId}: taking up again its run \\S+ on the proxy "edge"`)
      await waitUntil('the daemon taking the run up again', async () => (takenUp.test(daemon.log()) ? true : undefined))
      const running = await cliJson<Array<{ job: { name: string }; running?: string }>>(daemon.socket, ['job', 'list'])
      assert.equal(running.find(info => info.job.name === 'edge-appliance')?.running, runId, 'the job is running again in the appliance')
      unslow()
      const { summary, tree } = await runEnded(runId)
      assert.equal(summary.status, 'success')
      assertWhole(tree)
      assert.equal(tree.id, runId)
    }
    // The last delta, written while no daemon followed its run, restores the disk as it is now.
    const points = await cliJson<Array<{ id: string; jobId: string; timestamp: number }>>(daemon.socket, ['backup', 'list', '--remote', 'local', '--vm', vmUuid])
    const jobId = await jobIdOf('edge-appliance')
    const ours = points.filter(point => point.jobId === jobId).sort((a, b) => a.timestamp - b.timestamp)
    assert.equal(ours.length, 2, 'both runs wrote their restore points')
    await restoredMatches(ours[1]!.id)
  } finally {
    unslow()
  }
})

test('a pool\'s export limit holds across the appliance and the proxy: the appliance hands out the slots, and its lanes show the proxy\'s', async () => {
  await mkdir(join(dir.path, 'remote2'))
  await cliJson(daemon.socket, ['remote', 'add', 'local2', `file://${join(dir.path, 'remote2')}`])
  const both = fixtureVms
  assert.equal(both.length, 2, 'the tiny pool has two VMs')
  await createJob('xva-here', 'full', undefined, { vms: { uuids: both }, remotes: ['local2'], settings: { concurrency: 2 } })
  await createJob('xva-edge', 'full', 'edge', { vms: { uuids: both }, settings: { concurrency: 2 } })
  // Four XVA exports at once (two VMs in each job), slow enough to overlap: the pool allows 2 (DEFAULT_POOL_LIMITS.vmExports).
  lab.pools[0]!.control.setKnobs({ exportPerStreamMiBs: 2 })
  const client = await DaemonClient.connect(daemon.socket)
  try {
    let most = 0
    let proxyHeld = false
    let proxyProgress = false
    let waited = false
    const runs: Array<{ runId: string }> = []
    // Every change the lanes view is told of, and a poll beside it.
    const observe = (snapshot: LanesSnapshot) => {
      const lane = snapshot.pools[0]!.vmExports
      most = Math.max(most, lane.holders.length)
      proxyHeld ||= lane.holders.some(holder => holder.proxy === 'edge' && holder.runId === runs[1]?.runId)
      proxyProgress ||= lane.holders.some(holder => holder.proxy === 'edge' && (holder.done ?? 0) > 0)
      waited ||= lane.waiting.length > 0
    }
    await client.subscribe(['lanes'])
    client.onNotification('lanes', ({ snapshot }) => observe(snapshot))
    for (const name of ['xva-here', 'xva-edge']) runs.push(await client.call('job.run', { id: name }))
    const ended = async () => {
      for (const { runId } of runs) if ((await client.call('run.get', { runId })).tree.status === 'pending') return false
      return true
    }
    for (let i = 0; !(await ended()); i++) {
      observe(await client.call('lanes.get'))
      assert.ok(i < 3000, 'the two runs end')
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    assert.ok(proxyHeld, 'the appliance\'s lanes show the proxy\'s run holding an export slot')
    assert.ok(proxyProgress, 'the proxy\'s export shows its bytes in the appliance\'s lanes')
    assert.ok(waited, 'an export waited for a slot: the four did not all run at once')
    assert.ok(most <= 2, `at most 2 VM exports at a time on the pool (seen ${most})`)
    for (const { runId } of runs) {
      const { tree } = await cliJson(daemon.socket, ['run', 'show', runId])
      assert.equal(tree.status, 'success', describeFailure(tree))
    }
  } finally {
    client.close()
    unslow()
  }
})
