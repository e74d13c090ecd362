// Delegated runs end to end: the lab over HTTP, a real sshd on loopback, the proxy service and the appliance's
// daemon as their own processes. A full and a delta job that name the proxy run there: the appliance's log holds
// the whole tree (seen live while it goes), the restore points restore byte-exact, and the appliance's daemon
// reads under 1% of the bytes backed up (the same job run locally reads them all: the counter can fail); a
// cancel on the appliance stops the run on the proxy.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DaemonClient } from '../../source/client/index.ts'
import { startLab, type Lab } from '../../source/lab/index.ts'
import { PoolConnection } from '../../source/xapi/index.ts'
import { vmDisks } from '../../source/xapi/vm.ts'
import type { TaskNode } from '../../source/protocol/methods.ts'
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
  // Enough data that 1% of it stands well above what the daemon reads of the run's events.
  await lab.pools[0]!.control.writeVdi(vmDisks(conn, vm)[0]!.vdi.uuid as string, { offset: 0, length: 15 * MiB, seed: 7 })
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

async function createJob(name: string, mode: 'full' | 'delta', proxyName?: string): Promise<void> {
  const file = join(dir.path, `${name}.json`)
  await writeFile(file, JSON.stringify({
    name, mode, vms: { uuids: [vmUuid] }, remotes: ['local'], ...(proxyName !== undefined && { proxy: proxyName }),
    schedules: [{ name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 3 } }],
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

async function restoredMatches(backupId: string): Promise<void> {
  const [sr] = await cliJson(daemon.socket, ['sr', 'list'])
  const restored = await cliJson(daemon.socket, ['restore', '--remote', 'local', '--backup', backupId, '--sr', sr.uuid, '--wait'])
  assert.equal(restored.tree.status, 'success', describeFailure(restored.tree))
  await waitUntil('the restored VM in the cache', async () => (conn.all('VM').some(vm => vm.uuid === restored.tree.result.vmUuid) ? true : undefined))
  const source = conn.all('VM').find(vm => vm.uuid === vmUuid)!
  const copy = conn.all('VM').find(vm => vm.uuid === restored.tree.result.vmUuid)!
  assert.equal(await diskDigest(conn, vmDisks(conn, copy)[0]!.vdi.$ref), await diskDigest(conn, vmDisks(conn, source)[0]!.vdi.$ref))
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
  const points = await cliJson<Array<{ id: string; mode: string; jobId: string }>>(daemon.socket, ['backup', 'list', '--remote', 'local', '--vm', vmUuid])
  const jobs = await cliJson<Array<{ job: { id: string; name: string } }>>(daemon.socket, ['job', 'list'])
  const ids = new Set(jobs.filter(info => info.job.name.startsWith('edge-')).map(info => info.job.id))
  const delegated = points.filter(point => ids.has(point.jobId))
  assert.equal(delegated.length, 3)
  for (const point of delegated) await restoredMatches(point.id)
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
