// Shared by the engine's integration tests: a lab (tiny or pair) in a temporary folder, pool connections
// through source/xapi, local remotes in temporary folders, runs awaited to their final tree, and the
// digests that prove a restore gives back the snapshot's bytes.
import { createHash } from 'node:crypto'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { CancelToken } from 'promise-toolbox'
import { startLab, type Lab, type FixtureName } from '../../source/lab/index.ts'
import { LocalHandler, openRemote, type RemoteHandler } from '../../source/storage/index.ts'
import { destroyVmAndDisks, PoolConnection, vmDisks, type XapiRecord } from '../../source/xapi/index.ts'
import type { VmBackup } from '../../source/repository/index.ts'
import { parseJob, type JobInput } from '../../source/engine/jobs/index.ts'
import { restoreBackup, startBackupRun, startMirrorRun, type EngineContext } from '../../source/engine/index.ts'
import { jobSnapshots } from '../../source/engine/run/snapshots.ts'
import type { TaskNode } from '../../source/tasks/index.ts'
import assert from 'node:assert/strict'
import { startGanesha } from '../helpers/ganesha.ts'
import { startSamba } from '../helpers/samba.ts'
import type { ShareServer, ShareServerOptions } from '../helpers/share-server.ts'
import { tempDir } from '../helpers/tools.ts'

export interface EngineLab {
  lab: Lab
  conns: PoolConnection[]
  remotes: Map<string, RemoteHandler>
  /** The folders of the local remotes (those not given by URL). */
  remoteDirs: Map<string, string>
  context: EngineContext
  cleanup(): Promise<void>
}

/**
 * `remotes`: local remotes in temporary folders, with `remoteQuery` as their URL options (`?useVhdDirectory=true`),
 * which the handlers' labels carry as the daemon's do; `remoteUrls`: remotes opened from their URL, as the daemon
 * opens them (S3, Azure…).
 */
export async function startEngineLab(options: { fixture?: FixtureName; remotes?: string[]; remoteQuery?: string; remoteUrls?: Record<string, string>; remoteCapacities?: Record<string, number> } = {}): Promise<EngineLab> {
  const dirs: Array<Awaited<ReturnType<typeof tempDir>>> = []
  const labDir = await tempDir('lifeboat-engine-lab-')
  dirs.push(labDir)
  const lab = await startLab({ dataDir: labDir.path, fixture: options.fixture ?? 'tiny' })
  const conns: PoolConnection[] = []
  const remotes = new Map<string, RemoteHandler>()
  const remoteDirs = new Map<string, string>()
  async function cleanup() {
    for (const conn of conns) await conn.disconnect()
    for (const handler of remotes.values()) await handler.close()
    await lab.stop()
    for (const dir of dirs) await dir.cleanup()
  }
  try {
    conns.push(...(await Promise.all(lab.pools.map(pool => PoolConnection.connect({ url: pool.url, username: pool.username, password: pool.password }, { stallTimeoutMs: 20_000 })))))
    for (const [name, url] of Object.entries(options.remoteUrls ?? {})) {
      const handler = openRemote(url)
      remotes.set(name, handler)
      await handler.sync()
    }
    for (const name of options.remotes ?? (options.remoteUrls === undefined ? ['a'] : [])) {
      const dir = await tempDir(`lifeboat-remote-${name}-`)
      dirs.push(dir)
      const label = `file://${dir.path}${options.remoteQuery ?? ''}`
      const capacity = options.remoteCapacities?.[name]
      const handler = capacity === undefined ? new LocalHandler(dir.path, label) : new SizedLocalHandler(dir.path, label, capacity)
      remotes.set(name, handler)
      await handler.sync()
      remoteDirs.set(name, dir.path)
    }
  } catch (error) {
    // A remote that cannot be opened must not leave the lab listening: the test process would never end.
    await cleanup().catch(() => {})
    throw error
  }
  const context: EngineContext = { pools: new Map(conns.map(c => [c.poolUuid, c])), remotes }
  return { lab, conns, remotes, remoteDirs, context, cleanup }
}

/**
 * A local remote that reports a file system of `capacity` bytes less what its folder holds (test-only, as the
 * issue allows): remotes of different free space without mounts. `capacity` may change between runs.
 */
export class SizedLocalHandler extends LocalHandler {
  constructor(root: string, label: string, public capacity: number) {
    super(root, label)
  }

  override async getInfo(): Promise<{ size: number; used: number; available: number }> {
    const used = await bytesUnder(this.root)
    return { size: this.capacity, used, available: Math.max(0, this.capacity - used) }
  }
}

async function bytesUnder(dir: string): Promise<number> {
  let total = 0
  // A file written or removed meanwhile (a temporary one) counts as nothing.
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name)
    total += entry.isDirectory() ? await bytesUnder(path) : await stat(path).then(s => s.size, () => 0)
  }
  return total
}

export function job(input: Partial<JobInput> & Pick<JobInput, 'mode' | 'vms'>): ReturnType<typeof parseJob> {
  return parseJob({
    id: 'job-1',
    name: 'test job',
    remotes: ['a'],
    schedules: [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 3, snapshots: 1 } }],
    ...input,
  })
}

/** A mirror job (XO's mirror backup) of `sourceRemote`'s backups to `remotes`, delta unless told. */
export function mirrorJob(input: Partial<JobInput> & Pick<JobInput, 'sourceRemote' | 'remotes'>): ReturnType<typeof parseJob> {
  return parseJob({
    id: 'mirror-1',
    name: 'offsite',
    type: 'mirror',
    mode: 'delta',
    schedules: [{ id: 'mirror-schedule', name: 'nightly', cron: '0 5 * * *', timezone: 'UTC', retention: { backups: 10 } }],
    ...input,
  })
}

export async function mirrorToEnd(env: EngineLab, theJob: ReturnType<typeof parseJob>, distributedJobs?: Set<string>): Promise<TaskNode> {
  return startMirrorRun(theJob, env.context, { ...(distributedJobs !== undefined && { distributedJobs }) }).done
}

export async function runToEnd(env: EngineLab, jobValue: ReturnType<typeof parseJob>, options: { schedule?: string; onStart?: (cancel: (reason?: string) => void) => void } = {}): Promise<TaskNode> {
  const run = startBackupRun(jobValue, env.context, { schedule: options.schedule })
  options.onStart?.(run.cancel)
  return run.done
}

export function vmByName(conn: PoolConnection, name: string): XapiRecord {
  const vm = conn.all('VM').find(v => v.name_label === name && v.is_a_snapshot !== true && v.is_a_template !== true)
  if (vm === undefined) throw new Error(`no VM named ${name}`)
  return vm
}

/** The newest snapshot the job made of the VM, read as the engine reads it (after a cache sync). */
export async function newestJobSnapshot(env: EngineLab, vm: XapiRecord, jobId = 'job-1'): Promise<XapiRecord> {
  const conn = env.conns[0]!
  await conn.sync()
  return jobSnapshots(conn, conn.get('VM', vm.uuid), jobId).at(-1)!.record
}

/** The uuid of the VM's first disk (the one guest writes go to in these tests). */
export function liveDiskUuid(env: EngineLab, vm: XapiRecord): string {
  const conn = env.conns[0]!
  return vmDisks(conn, conn.get('VM', vm.uuid))[0]!.vdi.uuid as string
}

/** sha256 of a VDI's content as XAPI's raw export gives it. */
export async function diskDigest(conn: PoolConnection, vdiRef: string): Promise<string> {
  const response = await conn.xapi.getResource(CancelToken.from(new AbortController().signal), '/export_raw_vdi/', { query: { vdi: vdiRef, format: 'raw' } })
  const hash = createHash('sha256')
  for await (const chunk of response.body) hash.update(chunk as Buffer)
  await response.task?.catch(() => {})
  return hash.digest('hex')
}

/** Digests of every disk of a VM (or snapshot), in userdevice order. */
export async function vmDigests(conn: PoolConnection, vm: XapiRecord): Promise<string[]> {
  const digests: string[] = []
  for (const { vdi } of vmDisks(conn, vm)) digests.push(await diskDigest(conn, vdi.$ref))
  return digests
}

/** Every task of a tree, depth first. */
export function tasksOf(node: TaskNode): TaskNode[] {
  return [node, ...(node.tasks ?? []).flatMap(tasksOf)]
}

export function describeFailure(node: TaskNode): string {
  return JSON.stringify(tasksOf(node).filter(t => t.status !== 'success').map(t => ({ message: t.message, status: t.status, result: t.result, warnings: t.warnings })), null, 1)
}

/** Restores a backup onto the pool's SR, returns the restored disks' digests, and removes the restored VM. */
export async function restoredDigests(env: EngineLab, remote: string, backup: VmBackup): Promise<string[]> {
  const conn = env.conns[0]!
  const sr = conn.all('SR').find(s => s.content_type !== 'iso')!
  const restored = await restoreBackup(env.remotes.get(remote)!, backup.id, conn, sr.uuid)
  const vm = await conn.waitFor(() => conn.byRef(restored.vmRef), { what: 'the restored VM', timeoutMs: 10_000 })
  await conn.waitFor(() => vmDisks(conn, vm).length > 0 || undefined, { what: 'the restored disks', timeoutMs: 10_000 })
  try {
    return await vmDigests(conn, conn.byRef(restored.vmRef)!)
  } finally {
    await destroyVmAndDisks(conn, restored.vmRef)
  }
}

/** Every object under a remote folder, recursively ('' is the remote's root). */
export async function walkRemote(handler: RemoteHandler, dir: string): Promise<string[]> {
  const out: string[] = []
  for (const name of await handler.list(dir)) {
    const path = dir === '' ? name : `${dir}/${name}`
    if ((await handler.stat(path)).isDirectory) out.push(...(await walkRemote(handler, path)))
    else out.push(path)
  }
  return out
}

const MiB = 1024 * 1024

/** Waits until `probe` gives a value (its errors count as not yet), polling every 50 ms. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const value = await probe().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** A guest write of a little over 4 MiB at a place the seed picks. */
export async function guestWrite(env: EngineLab, seed: number): Promise<void> {
  const conn = env.conns[0]!
  const disk = vmDisks(conn, conn.get('VM', vmByName(conn, 'tiny-running').uuid))[0]!.vdi
  await env.lab.control.writeVdi(disk.uuid, { offset: (seed % 5) * 5 * MiB + MiB, length: 4 * MiB + 12345, seed })
}

/** Runs the job `runs` times with 3 MiB of guest writes before each; returns each snapshot's disk digests by its uuid. */
export async function runWithWrites(env: EngineLab, theJob: ReturnType<typeof job>, runs: number, firstSeed: number): Promise<Map<string, string[]>> {
  const conn = env.conns[0]!
  const vm = vmByName(conn, 'tiny-running')
  const expected = new Map<string, string[]>()
  for (let runNumber = 0; runNumber < runs; runNumber++) {
    const disk = vmDisks(conn, conn.get('VM', vm.uuid))[0]!.vdi
    await env.lab.control.writeVdi(disk.uuid, { offset: (runNumber * 5 + 1) * MiB, length: 3 * MiB, seed: firstSeed + runNumber })
    const tree = await runToEnd(env, theJob)
    assert.equal(tree.status, 'success', describeFailure(tree))
    const snapshot = await newestJobSnapshot(env, vm, theJob.id)
    expected.set(snapshot.uuid, await vmDigests(conn, snapshot))
  }
  return expected
}

/** Restores every backup and compares its disks with those of the snapshot it was made from. */
export async function checkRestores(env: EngineLab, remote: string, backups: VmBackup[], expected: Map<string, string[]>): Promise<void> {
  for (const backup of backups) {
    assert.ok(expected.has(backup.vmSnapshot.uuid), `${backup.id} names a snapshot this test made`)
    assert.deepEqual(await restoredDigests(env, remote, backup), expected.get(backup.vmSnapshot.uuid), `restore of ${backup.id} from ${remote}`)
  }
}

/** The file-share servers the SMB and NFS end-to-end tests run on: one suite, parameterised over both. */
export const SHARE_SERVERS: Array<{ name: string; start: (options?: ShareServerOptions) => Promise<ShareServer> }> = [
  { name: 'SMB (Samba)', start: startSamba },
  { name: 'NFS (nfs-ganesha)', start: startGanesha },
]
