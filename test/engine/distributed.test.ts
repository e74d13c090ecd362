// Distributed mode end to end against the lab: a delta job over 3 local remotes that report different free
// space (a test-only handler decorator), then over 2 S3 buckets (s3rver, no free space: random), then
// continuous replication over 2 SRs. Each VM's backup lands on one target; a chain stays where it is, a full
// forced by fullInterval too, a forced full goes by free space; retention counts the restore points of all
// the targets together; every kept point restores byte-exact from its own target with the others taken away.
import assert from 'node:assert/strict'
import { rename } from 'node:fs/promises'
import { after, before, describe, test } from 'node:test'
import { listVmBackups, type VmBackup } from '../../source/repository/index.ts'
import { listReplicas, REPLICA_KEY } from '../../source/engine/targets/replicas.ts'
import type { TaskNode } from '../../source/tasks/index.ts'
import { vmDisks, type PoolConnection, type XapiRecord } from '../../source/xapi/index.ts'
import { startS3rver, type S3rver } from '../helpers/s3rver.ts'
import { describeFailure, job, newestJobSnapshot, restoredDigests, runToEnd, SizedLocalHandler, startEngineLab, tasksOf, vmByName, vmDigests, type EngineLab } from './helpers.ts'

const MiB = 1024 * 1024
const GiB = 1024 * MiB

/** The export tasks of a run (one per target that took part). */
function exports(tree: TaskNode): TaskNode[] {
  return tasksOf(tree).filter(t => t.message === 'export')
}

/** The one export of a run's only VM, with its target, full or delta, and why it went there. */
function placement(tree: TaskNode): { target: string; isFull: boolean; why: string; reason: string } {
  const [task, ...more] = exports(tree)
  assert.ok(task !== undefined && more.length === 0, `one export per VM in distributed mode: ${JSON.stringify(exports(tree).map(t => t.data))}`)
  const info = task.infos?.find(entry => entry.message.startsWith('distributed: '))
  assert.ok(info !== undefined, 'the export says why it went there')
  assert.equal((task.data?.distributed as { reason: string }).reason, (info.data as { reason: string }).reason)
  assert.equal(info.message, `distributed: ${(task.data?.distributed as { why: string }).why}`)
  return { target: String(task.data?.id), isFull: task.data?.isFull === true, why: String((task.data?.distributed as { why: string }).why), reason: String((info.data as { reason: string }).reason) }
}

describe('distributed delta backups over 3 local remotes of different free space', () => {
  let env: EngineLab
  let vm: XapiRecord
  const expected = new Map<string, string[]>()
  const capacity = (name: string, bytes: number) => void ((env.remotes.get(name) as SizedLocalHandler).capacity = bytes)

  before(async () => {
    env = await startEngineLab({ remotes: ['a', 'b', 'c'], remoteCapacities: { a: 1 * GiB, b: 3 * GiB, c: 2 * GiB } })
    vm = vmByName(env.conns[0]!, 'tiny-running')
  })
  after(async () => env?.cleanup())

  const distributedJob = (settings: Record<string, unknown> = {}, fullInterval?: number) => job({
    mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['a', 'b', 'c'], settings: { distributeBackups: true, ...settings },
    schedules: [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 5, snapshots: 1 }, ...(fullInterval !== undefined && { fullInterval }) }],
  })

  // Snapshot times are to the second, as XAPI's: two runs in one second would tie in retention's order, and
  // which of the two is "the oldest" would be a toss-up. Each run starts in a second of its own.
  let lastRunSecond = 0
  async function inNextSecond(): Promise<void> {
    while (Math.floor(Date.now() / 1000) <= lastRunSecond) await new Promise(resolve => setTimeout(resolve, 1000 - (Date.now() % 1000) + 5))
    lastRunSecond = Math.floor(Date.now() / 1000)
  }

  async function backup(runNumber: number, theJob = distributedJob()): Promise<ReturnType<typeof placement>> {
    await inNextSecond()
    const conn = env.conns[0]!
    const disk = vmDisks(conn, conn.get('VM', vm.uuid))[0]!.vdi
    await env.lab.control.writeVdi(disk.uuid, { offset: (runNumber * 3 + 1) * MiB, length: 2 * MiB + 777, seed: 500 + runNumber })
    const tree = await runToEnd(env, theJob)
    assert.equal(tree.status, 'success', describeFailure(tree))
    const snapshot = await newestJobSnapshot(env, vm)
    expected.set(snapshot.uuid, await vmDigests(conn, snapshot))
    return placement(tree)
  }

  test('8 runs: placed by free space, chains kept, fullInterval kept, forceFull moved; 5 restore points in all, each restorable from its remote alone', async () => {
    // 1: a first run starts a chain where the most space is (b, 3 GiB).
    let run = await backup(1)
    assert.deepEqual([run.target, run.isFull, run.reason], ['b', true, 'most free space'])
    assert.match(run.why, /^b, the most free space \(a 1024 MiB free, b 3\.0 GiB free, c 2\.0 GiB free\)$/)
    // 2: b now has the least space, but it holds the chain: the delta stays there.
    capacity('b', 512 * MiB)
    run = await backup(2)
    assert.deepEqual([run.target, run.isFull, run.reason], ['b', false, 'chain'])
    assert.match(run.why, /^b, it holds the VM's chain, which this backup continues \(a 1024 MiB free, b \d+ MiB free, c 2\.0 GiB free\)$/)
    // 3: a forced full is a new chain: placed by free space (c).
    run = await backup(3, distributedJob({ forceFull: true }))
    assert.deepEqual([run.target, run.isFull, run.reason], ['c', true, 'most free space'])
    run = await backup(4)
    assert.deepEqual([run.target, run.isFull, run.reason], ['c', false, 'chain'])
    // 5: a full forced by fullInterval stays with its chain (as in XO: the bases are checked first), though a has more room now.
    capacity('a', 10 * GiB)
    run = await backup(5, distributedJob({}, 2))
    assert.deepEqual([run.target, run.isFull, run.reason], ['c', true, 'chain'])
    // 6: forced full again: a, the most free space; 7 and 8 continue there.
    run = await backup(6, distributedJob({ forceFull: true }))
    assert.deepEqual([run.target, run.isFull], ['a', true])
    for (const runNumber of [7, 8]) {
      run = await backup(runNumber)
      assert.deepEqual([run.target, run.isFull, run.reason], ['a', false, 'chain'])
    }

    // Retention 5 across the three: runs 4 to 8 are kept, each deleted one where it lay (b emptied, c's run 3 merged into 4).
    const held = new Map<string, VmBackup[]>()
    for (const name of ['a', 'b', 'c']) held.set(name, await listVmBackups(env.remotes.get(name)!, vm.uuid))
    assert.deepEqual([...held].map(([name, backups]) => [name, backups.length]), [['a', 3], ['b', 0], ['c', 2]])
    assert.deepEqual((await env.remotes.get('b')!.list(`xo-vm-backups/${vm.uuid}/vdis`, { ignoreMissing: true })).length <= 1, true, 'b holds no disk of a deleted backup')
    const [c4, c5] = held.get('c')!
    assert.ok(Object.values(c4!.isVhdDifferencing ?? {}).every(d => !d), "run 4's backup took run 3's full: it no longer depends on it")
    assert.ok(Object.values(c5!.isVhdDifferencing ?? {}).every(d => !d), 'run 5 is the full fullInterval forced')

    // Each restore point restores from its own remote while the other two are taken away.
    for (const [name, backups] of held) {
      const away = [...env.remoteDirs].filter(([other]) => other !== name)
      for (const [, dir] of away) await rename(dir, `${dir}.away`)
      try {
        for (const backup of backups) assert.deepEqual(await restoredDigests(env, name, backup), expected.get(backup.vmSnapshot.uuid), `${backup.id} from ${name} alone`)
      } finally {
        for (const [, dir] of away) await rename(`${dir}.away`, dir)
      }
    }
  })

  test('deleteFirst makes room across the remotes before the transfer; a remote out of reach is left out, neither counted nor touched', async () => {
    const total = async () => {
      let count = 0
      for (const name of ['a', 'b', 'c']) count += (await listVmBackups(env.remotes.get(name)!, vm.uuid)).length
      return count
    }
    const theJob = distributedJob({ deleteFirst: true })
    await inNextSecond()
    let tree = await runToEnd(env, theJob)
    assert.equal(tree.status, 'success', describeFailure(tree))
    const vmTask = (node: TaskNode) => tasksOf(node).find(t => t.message === 'backup VM')!
    assert.ok(vmTask(tree).infos?.some(i => i.message === 'retention across the 3 remotes keeps 4: deleted 1 on c'), JSON.stringify(vmTask(tree).infos))
    assert.deepEqual([placement(tree).target, placement(tree).reason], ['a', 'chain'])
    assert.equal(await total(), 5)

    const dirA = env.remoteDirs.get('a')!
    await rename(dirA, `${dirA}.away`)
    await inNextSecond()
    try {
      tree = await runToEnd(env, theJob)
    } finally {
      await rename(`${dirA}.away`, dirA)
    }
    assert.equal(tree.status, 'success', describeFailure(tree))
    assert.ok(vmTask(tree).warnings?.some(w => /^remote a is left out of this VM's backup: REMOTE_UNAVAILABLE/.test(w.message)), JSON.stringify(vmTask(tree).warnings))
    const run = placement(tree)
    assert.deepEqual([run.target, run.isFull, run.reason], ['c', true, 'most free space'], "a held the chain: the others start a new one, where the most space is")
    assert.equal(await total(), 6, "the backups on a were not counted: nothing was deleted elsewhere for their sake")
  })
})

describe('distributed delta backups over 2 S3 buckets (no free space: at random)', () => {
  let s3: S3rver
  let env: EngineLab
  let vm: XapiRecord

  before(async () => {
    s3 = await startS3rver()
    env = await startEngineLab({ remotes: ['local'], remoteUrls: { east: s3.urlFor('east'), west: s3.urlFor('west') } })
    vm = vmByName(env.conns[0]!, 'tiny-running')
  })
  after(async () => {
    await env?.cleanup()
    await s3?.stop()
  })

  const s3Job = (remotes: string[], settings: Record<string, unknown> = {}) => job({
    mode: 'delta', vms: { uuids: [vm.uuid] }, remotes, settings: { distributeBackups: true, ...settings },
    schedules: [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 3, snapshots: 1 } }],
  })

  test('a new chain goes to a bucket at random and stays there; retention 3 over 5 runs keeps 3 in all; each restores from its bucket alone', async () => {
    const conn = env.conns[0]!
    const expected = new Map<string, string[]>()
    const placed: Array<ReturnType<typeof placement>> = []
    for (let runNumber = 1; runNumber <= 5; runNumber++) {
      const disk = vmDisks(conn, conn.get('VM', vm.uuid))[0]!.vdi
      await env.lab.control.writeVdi(disk.uuid, { offset: (runNumber * 3 + 1) * MiB, length: 2 * MiB, seed: 900 + runNumber })
      const tree = await runToEnd(env, s3Job(['east', 'west'], runNumber === 3 ? { forceFull: true } : {}))
      assert.equal(tree.status, 'success', describeFailure(tree))
      const snapshot = await newestJobSnapshot(env, vm)
      expected.set(snapshot.uuid, await vmDigests(conn, snapshot))
      placed.push(placement(tree))
    }
    for (const index of [0, 2]) {
      assert.equal(placed[index]!.reason, 'random', `run ${index + 1} starts a chain at random`)
      assert.match(placed[index]!.why, /^(east|west), chosen at random: none of the 2 targets can tell its free space$/)
    }
    for (const index of [1, 3, 4]) assert.deepEqual([placed[index]!.target, placed[index]!.reason], [placed[index - 1]!.target, 'chain'], `run ${index + 1} continues its chain`)
    const held = new Map<string, VmBackup[]>()
    for (const name of ['east', 'west']) held.set(name, await listVmBackups(env.remotes.get(name)!, vm.uuid))
    assert.equal([...held.values()].flat().length, 3, 'retention 3 across both buckets')
    for (const [name, backups] of held) {
      const others = new Map([...env.remotes].filter(([other]) => other !== name))
      for (const other of others.keys()) env.remotes.delete(other)
      try {
        for (const backup of backups) assert.deepEqual(await restoredDigests(env, name, backup), expected.get(backup.vmSnapshot.uuid), `${backup.id} from ${name} alone`)
      } finally {
        for (const [other, handler] of others) env.remotes.set(other, handler)
      }
    }
  })

  test('a bucket and a local folder cannot be pooled: the run fails at its start, saying why, and writes nothing', async () => {
    const before = (await listVmBackups(env.remotes.get('local')!, vm.uuid)).length
    const tree = await runToEnd(env, s3Job(['east', 'local']))
    assert.equal(tree.status, 'failure')
    assert.equal((tree.result as { code: string }).code, 'DISTRIBUTED_MIXED_SPACE')
    assert.match((tree.result as { message: string }).message, /"local" tells its free space and "east" cannot \(object stores\): they cannot be pooled/)
    assert.equal(exports(tree).length, 0)
    assert.equal((await listVmBackups(env.remotes.get('local')!, vm.uuid)).length, before)
  })
})

describe('distributed continuous replication over 2 SRs', () => {
  let env: EngineLab
  let source: PoolConnection
  let target: PoolConnection
  let vm: XapiRecord
  let local: XapiRecord
  let dr: XapiRecord
  const expected = new Map<string, string[]>()

  before(async () => {
    env = await startEngineLab({ fixture: 'pair', remotes: [] })
    source = env.conns[0]!
    target = env.conns[1]!
    vm = vmByName(source, 'tiny-running')
    local = source.all('SR').find(s => s.name_label === 'Local storage')!
    dr = target.all('SR').find(s => s.name_label === 'DR storage')!
  })
  after(async () => env?.cleanup())

  /** Sets an SR's free space in the lab and waits for the pool's records to say so. */
  async function freeSpace(conn: PoolConnection, sr: XapiRecord, bytes: number): Promise<void> {
    const pool = env.lab.pools.find(p => p.poolUuid === conn.poolUuid)!
    await pool.control.srFull(String(sr.uuid), bytes)
    await conn.sync()
  }

  const crJob = (settings: Record<string, unknown> = {}) => job({
    mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: [], srs: [local.uuid as string, dr.uuid as string], settings: { distributeReplications: true, ...settings },
    schedules: [{ id: 'schedule-1', name: 'hourly', cron: '0 * * * *', timezone: 'UTC', retention: { replicas: 3, snapshots: 1 } }],
  })

  async function replicate(theJob = crJob()): Promise<ReturnType<typeof placement>> {
    const tree = await runToEnd(env, theJob)
    assert.equal(tree.status, 'success', describeFailure(tree))
    const snapshot = await newestJobSnapshot(env, vm)
    expected.set(snapshot.uuid, await vmDigests(source, snapshot))
    return placement(tree)
  }

  async function replicasOn(conn: PoolConnection, sr: XapiRecord): Promise<XapiRecord[]> {
    await conn.sync()
    return listReplicas(conn, { jobOrScheduleId: 'schedule-1', vmUuid: vm.uuid, srUuid: sr.uuid as string })
  }

  test('placed by the SRs\' free space at the run\'s start, the chain kept, and replica retention across both SRs (XO\'s matches nothing)', async () => {
    await freeSpace(source, local, 1 * GiB)
    await freeSpace(target, dr, 2 * GiB)
    let run = await replicate()
    assert.deepEqual([run.target, run.isFull, run.reason], [dr.uuid, true, 'most free space'])
    assert.match(run.why, /^DR storage, the most free space \(Local storage 1\.0 GiB free, DR storage [\d.]+ GiB free\)$/)
    await freeSpace(source, local, 3 * GiB)
    run = await replicate()
    assert.deepEqual([run.target, run.isFull, run.reason], [dr.uuid, false, 'chain'])
    run = await replicate(crJob({ forceFull: true }))
    assert.deepEqual([run.target, run.isFull, run.reason], [local.uuid, true, 'most free space'])
    run = await replicate()
    assert.deepEqual([run.target, run.isFull, run.reason], [local.uuid, false, 'chain'])
    // 4 replicas made, 3 kept in all: the oldest, on DR storage, was destroyed there.
    const onDr = await replicasOn(target, dr)
    const onLocal = await replicasOn(source, local)
    assert.deepEqual([onDr.length, onLocal.length], [1, 2])
    for (const [conn, replicas] of [[target, onDr], [source, onLocal]] as const) {
      for (const replica of replicas) {
        const copyOf = (replica.other_config as Record<string, string>)[REPLICA_KEY.copyOf]!
        assert.deepEqual(await vmDigests(conn, replica), expected.get(copyOf), `replica ${String(replica.name_label)} equals its snapshot`)
      }
    }
  })
})
