// Backup throughput, fan-out cost, memory and the backup window, through the engine against the lab.
// Run: node --import tsx test/bench/backup.ts [--gib 2]
// Prints, for a VM with --gib GiB allocated on an uncapped lab: full (first VHD of a chain), full-mode
// XVA and delta MiB/s to one local remote with their ratio to a plain copy of the same bytes; a continuous
// replication's delta onto the DR pool's SR against a plain copy of the changed bytes; the time ratio of
// 3 remotes to 1, and of 2 remotes + 2 SRs (one per pool) to 1 remote; peak RSS of the backing-up process
// with 1 GiB and 4 GiB allocated; and, with the lab capped at the seed's rates (30 MiB/s per stream, 120 MiB/s per host), the window of the
// default lab's 12 VMs against its theoretical minimum under those caps.
// Each backup runs in its own process (the lab in another) so that peak RSS is the engine's alone; the
// default lab's production pool is used for its large SRs (web-01 and web-02, grown to 4 GiB).
import { spawn } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { startBackupRun } from '../../source/engine/index.ts'
import { parseJob } from '../../source/engine/jobs/index.ts'
import { startLab } from '../../source/lab/index.ts'
import { LocalHandler } from '../../source/storage/index.ts'
import { exportVdiVhd, PoolConnection, vmDisks } from '../../source/xapi/index.ts'

const MiB = 1024 * 1024
const GiB = 1024 * MiB

interface LabInfo { url: string; username: string; password: string; pools: Array<{ url: string; username: string; password: string }> }
interface ChildRequest { lab: LabInfo; vmName: string; mode: 'full' | 'delta'; forceFull: boolean; remotes: string[]; srs?: string[]; jobId?: string }
interface ChildResult { seconds: number; bytes: number; maxRssMiB: number; status: string }

function job(request: Pick<ChildRequest, 'mode' | 'forceFull' | 'srs' | 'jobId'> & { vms: unknown; remotes: string[]; concurrency?: number }) {
  return parseJob({
    id: request.jobId ?? `bench-${request.mode}`, name: `bench ${request.mode}`, mode: request.mode, vms: request.vms, remotes: request.remotes, srs: request.srs ?? [],
    settings: { forceFull: request.forceFull, concurrency: request.concurrency ?? 2 },
    schedules: [{ id: 'bench', name: 'bench', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 10, replicas: 2, snapshots: 1 } }],
  })
}

/** Child mode: one backup run, then its figures on stdout as one JSON line. */
async function child(request: ChildRequest): Promise<void> {
  const [conn, ...others] = await Promise.all(request.lab.pools.map(pool => PoolConnection.connect(pool)))
  const remotes = new Map(request.remotes.map(path => [path, new LocalHandler(path)]))
  for (const [path, handler] of remotes) {
    await mkdir(path, { recursive: true })
    await handler.sync()
  }
  const vm = conn!.all('VM').find(v => v.name_label === request.vmName && v.is_a_snapshot !== true)!
  const started = performance.now()
  const tree = await startBackupRun(job({ ...request, vms: { uuids: [vm.uuid] }, remotes: request.remotes }), { pools: new Map([conn!, ...others].map(c => [c.poolUuid, c])), remotes }).done
  const seconds = (performance.now() - started) / 1000
  const transfer = JSON.stringify(tree).match(/"message":"transfer"[^}]*"result":\{"size":(\d+)/)
  const result: ChildResult = { seconds, bytes: transfer === null ? 0 : Number(transfer[1]), maxRssMiB: process.resourceUsage().maxRSS / 1024, status: tree.status }
  process.stdout.write(`${JSON.stringify(result)}\n`)
  for (const c of [conn!, ...others]) await c.disconnect()
  process.exit(0)
}

function runChild(request: ChildRequest): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', import.meta.filename, '--child', JSON.stringify(request)], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    proc.stdout.on('data', chunk => (out += chunk))
    proc.on('exit', code => {
      const line = out.trim().split('\n').at(-1) ?? ''
      try {
        const result = JSON.parse(line) as ChildResult
        if (result.status !== 'success') reject(new Error(`backup ${result.status}`))
        else resolve(result)
      } catch {
        reject(new Error(`child exited ${code}: ${out}`))
      }
    })
  })
}

async function startLabProcess(dataDir: string): Promise<{ info: LabInfo; stop: () => void }> {
  const proc = spawn(process.execPath, ['bin/lifeboat.js', 'lab', 'serve', '--fixture', 'default', '--data', dataDir, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const line = await new Promise<string>(resolve => createInterface({ input: proc.stdout }).once('line', resolve))
  return { info: JSON.parse(line) as LabInfo, stop: () => proc.kill('SIGTERM') }
}

/** Grows the VM's disk and fills `bytes` of it with a pattern (guest writes through the control plane). */
async function fill(lab: LabInfo, conn: PoolConnection, vmName: string, size: number, bytes: number, seed: number, from = 0): Promise<void> {
  const vm = conn.all('VM').find(v => v.name_label === vmName && v.is_a_snapshot !== true)!
  const vdi = vmDisks(conn, vm)[0]!.vdi
  if (Number(vdi.virtual_size) < size) await conn.call('VDI.resize', vdi.$ref, String(size))
  for (let offset = from; offset < from + bytes; offset += 256 * MiB) {
    const response = await fetch(new URL(`/_sim/vdi/${vdi.uuid}/write`, lab.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ offset, length: Math.min(256 * MiB, from + bytes - offset), seed }) })
    if (!response.ok) throw new Error(`write failed: ${await response.text()}`)
  }
}

/** Every file under a folder, with its size and time. */
async function filesUnder(dir: string): Promise<Array<{ path: string; size: number; mtimeMs: number }>> {
  const files: Array<{ path: string; size: number; mtimeMs: number }> = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) files.push(...(await filesUnder(path)))
    else files.push({ path, ...(await stat(path)) })
  }
  return files
}

const largestFile = async (dir: string) => (await filesUnder(dir)).sort((x, y) => y.size - x.size)[0]!.path
/** The last backup's VHD. */
const newestFile = async (dir: string) => (await filesUnder(dir)).filter(f => f.path.endsWith('.vhd')).sort((x, y) => y.mtimeMs - x.mtimeMs)[0]!.path

/** The source's own pace: a full VHD export of the VM's disk from the lab, read and thrown away. */
async function exportRate(conn: PoolConnection, vmName: string): Promise<number> {
  const vm = conn.all('VM').find(v => v.name_label === vmName && v.is_a_snapshot !== true)!
  const vdi = vmDisks(conn, vm)[0]!.vdi
  const started = performance.now()
  const { stream, task } = await exportVdiVhd(conn, vdi.$ref, { holder: { runId: 'bench', vm: vm.uuid, phase: 'export' } })
  let bytes = 0
  for await (const chunk of stream) bytes += (chunk as Buffer).length
  await task
  return bytes / MiB / ((performance.now() - started) / 1000)
}

async function copyRate(file: string, scratch: string): Promise<number> {
  const { size } = await stat(file)
  const started = performance.now()
  await copyFile(file, join(scratch, 'copy'))
  const seconds = (performance.now() - started) / 1000
  await rm(join(scratch, 'copy'))
  return size / MiB / seconds
}

const rate = (r: ChildResult) => r.bytes / MiB / r.seconds

async function uncapped(gib: number, root: string): Promise<void> {
  const lab = await startLabProcess(join(root, 'lab'))
  const conn = await PoolConnection.connect(lab.info)
  const remote = (name: string) => join(root, name)
  try {
    console.log(`preparing: ${gib} GiB written into web-01's disk (4 GiB), 1 GiB into web-02's (4 GiB)…`)
    await fill(lab.info, conn, 'web-01', 4 * GiB, gib * GiB, 1)
    await fill(lab.info, conn, 'web-02', 4 * GiB, 1 * GiB, 2)
    const base = { lab: lab.info, vmName: 'web-01', forceFull: false }

    const full = await runChild({ ...base, mode: 'delta', remotes: [remote('one')] })
    const copy = await copyRate(await largestFile(remote('one')), root)
    const source = await exportRate(conn, 'web-01')
    // Continuous replication to the DR pool's SR, a job of its own (its base is its own snapshot): a full, then the same change as the remote's delta.
    const drConn = await PoolConnection.connect(lab.info.pools[1]!)
    const drSr = drConn.all('SR').find(sr => sr.name_label === 'DR storage')!.uuid
    await drConn.disconnect()
    const replication = { ...base, mode: 'delta' as const, remotes: [], srs: [drSr], jobId: 'bench-cr' }
    await runChild(replication)
    await fill(lab.info, conn, 'web-01', 4 * GiB, 512 * MiB, 3, 256 * MiB)
    const delta = await runChild({ ...base, mode: 'delta', remotes: [remote('one')] })
    const changedCopy = await copyRate(await newestFile(remote('one')), root)
    const crDelta = await runChild(replication)
    const xva = await runChild({ ...base, mode: 'full', remotes: [remote('xva')] })
    const three = await runChild({ ...base, mode: 'delta', forceFull: true, remotes: [remote('three-a'), remote('three-b'), remote('three-c')] })
    // One snapshot fed to 2 remotes and to an SR of each pool (continuous replication), against the same backup to one remote.
    const nfsSr = conn.all('SR').find(sr => sr.name_label === 'NFS shared storage')!.uuid as string
    const fan = await runChild({ ...base, mode: 'delta', forceFull: true, jobId: 'bench-fan', remotes: [remote('fan-a'), remote('fan-b')], srs: [nfsSr, drSr] })
    const small = await runChild({ lab: lab.info, vmName: 'web-02', mode: 'delta', forceFull: true, remotes: [remote('rss-1')] })
    await fill(lab.info, conn, 'web-02', 4 * GiB, 3 * GiB, 4, 1 * GiB)
    const big = await runChild({ lab: lab.info, vmName: 'web-02', mode: 'delta', forceFull: true, remotes: [remote('rss-4')] })

    console.log(`\nplain copy of the full VHD on this disk: ${copy.toFixed(0)} MiB/s; the lab's VHD export alone (read and discarded): ${source.toFixed(0)} MiB/s`)
    console.log('backup to one local remote          MiB/s   ratio to copy   ratio to the export alone')
    for (const [name, r] of [['full (first VHD of a chain)', full], ['full-mode XVA', xva], ['delta (512 MiB changed)', delta]] as const) {
      console.log(`  ${name.padEnd(34)}${rate(r).toFixed(0).padStart(5)}   ${(rate(r) / copy).toFixed(2).padStart(13)}   ${(rate(r) / source).toFixed(2).padStart(25)}`)
    }
    console.log(`continuous replication, delta (512 MiB changed) onto the DR pool's SR: ${rate(crDelta).toFixed(0)} MiB/s (${(crDelta.bytes / MiB).toFixed(0)} MiB in ${crDelta.seconds.toFixed(1)} s, snapshot, clones and replica marks included); a plain copy of the changed bytes (the remote delta's VHD): ${changedCopy.toFixed(0)} MiB/s; ratio ${(rate(crDelta) / changedCopy).toFixed(2)}`)
    console.log(`3 remotes vs 1 (forced full, ${(three.bytes / GiB).toFixed(2)} GiB): ${three.seconds.toFixed(1)} s vs ${full.seconds.toFixed(1)} s, time ratio ${(three.seconds / full.seconds).toFixed(2)}`)
    console.log(`2 remotes + 2 SRs on two pools vs 1 remote (forced full): ${fan.seconds.toFixed(1)} s vs ${full.seconds.toFixed(1)} s, time ratio ${(fan.seconds / full.seconds).toFixed(2)}`)
    const allocated = (r: ChildResult) => `${(r.bytes / GiB).toFixed(2)} GiB`
    console.log(`peak RSS of the backing-up process: ${small.maxRssMiB.toFixed(0)} MiB with ${allocated(small)} allocated, ${big.maxRssMiB.toFixed(0)} MiB with ${allocated(big)} allocated`)
  } finally {
    await conn.disconnect()
    lab.stop()
  }
}

async function window(root: string): Promise<void> {
  const perStream = 30
  const hostCap = 120
  const lab = await startLab({ dataDir: join(root, 'window-lab'), fixture: 'default' })
  const conns = await Promise.all(lab.pools.map(p => PoolConnection.connect(p)))
  try {
    // 96 MiB of guest data per disk, so that the window is about moving data, not only snapshots.
    for (const [index, pool] of lab.pools.entries()) {
      for (const vm of conns[index]!.all('VM').filter(v => v.is_a_snapshot !== true && v.is_a_template !== true && v.is_control_domain !== true)) {
        for (const { vdi } of vmDisks(conns[index]!, vm)) await pool.control.writeVdi(vdi.uuid as string, { offset: 0, length: 96 * MiB, seed: 5 })
      }
      pool.control.setKnobs({ exportPerStreamMiBs: perStream, exportHostMiBs: hostCap })
    }
    await mkdir(join(root, 'window-remote'))
    const handler = new LocalHandler(join(root, 'window-remote'))
    await handler.sync()
    const theJob = job({ mode: 'delta', forceFull: false, vms: { smart: {} }, remotes: ['window'], concurrency: 0 })
    const started = performance.now()
    const tree = await startBackupRun(theJob, { pools: new Map(conns.map(c => [c.poolUuid, c])), remotes: new Map([['window', handler]]) }).done
    const seconds = (performance.now() - started) / 1000
    // The least time the caps allow: each pool's bytes at its host cap, and no disk faster than one stream.
    let minimum = 0
    let vms = 0
    for (const conn of conns) {
      let poolBytes = 0
      for (const vmTask of tree.tasks ?? []) {
        if (!conn.byUuid(String(vmTask.data?.id))) continue
        vms++
        for (const exportTask of vmTask.tasks?.filter(t => t.message === 'export') ?? []) {
          const size = Number((exportTask.tasks?.[0]?.result as { size?: number } | undefined)?.size ?? 0)
          poolBytes += size
          minimum = Math.max(minimum, size / MiB / perStream)
        }
      }
      minimum = Math.max(minimum, poolBytes / MiB / hostCap)
    }
    console.log(`\nbackup window, ${vms} VMs of the default lab (status ${tree.status}), caps ${perStream} MiB/s per stream and ${hostCap} MiB/s per host:`)
    console.log(`  ${seconds.toFixed(1)} s against a theoretical minimum of ${minimum.toFixed(1)} s (ratio ${(seconds / Math.max(minimum, 0.001)).toFixed(2)}; snapshots, serialised per SR, are not in the minimum)`)
  } finally {
    for (const conn of conns) await conn.disconnect()
    await lab.stop()
  }
}

const { values } = parseArgs({ options: { child: { type: 'string' }, gib: { type: 'string', default: '2' } } })
if (values.child !== undefined) {
  await child(JSON.parse(values.child) as ChildRequest)
} else {
  const root = await mkdtemp(join(tmpdir(), 'lifeboat-bench-backup-'))
  try {
    await uncapped(Number(values.gib), root)
    await window(root)
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}
