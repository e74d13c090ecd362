// Backup throughput, fan-out cost, memory, restores and the backup window, through the engine against the lab.
// Run: node --import tsx test/bench/backup.ts [--gib 2]
// Prints, for a VM with --gib GiB allocated on an uncapped lab: full (first VHD of a chain), full-mode XVA and
// delta MiB/s to one local remote with their ratio to a plain copy of the same bytes and to the lab's export
// alone (the same export read and thrown away), and the CPU seconds per GiB of the backing-up process against a
// plain copy's; a continuous replication's delta onto the DR pool's SR against a plain copy of the changed
// bytes; the time ratio of 3 remotes to 1, and of 2 remotes + 2 SRs (one per pool) to 1 remote; peak RSS of
// the backing-up process with 1 GiB and 4 GiB allocated; a chain of 5 and an XVA restored through the lab
// against the lab's import alone of the same bytes; and, with the lab capped at the seed's rates (30 MiB/s per
// stream, 120 MiB/s per host), the window of the default lab's 12 VMs against its theoretical minimum.
// Each backup runs in its own process (the lab in another) so that peak RSS and CPU are the engine's alone; the
// default lab's production pool is used for its large SRs (web-01 and web-02, grown to 4 GiB).
import { spawn } from 'node:child_process'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { pipeline } from 'node:stream/promises'
import { parseArgs } from 'node:util'
import { restoreBackup, startBackupRun } from '../../source/engine/index.ts'
import { parseJob } from '../../source/engine/jobs/index.ts'
import { VhdChain } from '../../source/formats/vhd/index.ts'
import { startLab } from '../../source/lab/index.ts'
import { listRestorePoints } from '../../source/repository/index.ts'
import { LocalHandler } from '../../source/storage/index.ts'
import { destroyVmAndDisks, exportVdiVhd, exportVmXva, importVdiVhd, importVmXva, PoolConnection, vmDisks, type ExportStream } from '../../source/xapi/index.ts'
import { cpuSeconds, peakRssMiB, systemSeconds, GiB, isMain, median, MiB, plainCopy, plainTee, printFigures, runScript, type ChildFigures, type Figure } from './measure.ts'

interface LabInfo { url: string; username: string; password: string; pools: Array<{ url: string; username: string; password: string }> }
interface ChildRequest { lab: LabInfo; vmName: string; mode: 'full' | 'delta'; forceFull: boolean; remotes: string[]; srs?: string[]; jobId?: string }
interface ChildResult extends ChildFigures { bytes: number; status: string }

function job(request: Pick<ChildRequest, 'mode' | 'forceFull' | 'srs' | 'jobId'> & { vms: unknown; remotes: string[]; concurrency?: number }) {
  return parseJob({
    id: request.jobId ?? `bench-${request.mode}`, name: `bench ${request.mode}`, mode: request.mode, vms: request.vms, remotes: request.remotes, srs: request.srs ?? [],
    settings: { forceFull: request.forceFull, concurrency: request.concurrency ?? 2 },
    schedules: [{ id: 'bench', name: 'bench', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 10, replicas: 2, snapshots: 1 } }],
  })
}

/** Child mode: one backup run, then its figures on stdout as one JSON line (CPU: the run's own, not loading the code). */
async function child(request: ChildRequest): Promise<void> {
  const [conn, ...others] = await Promise.all(request.lab.pools.map(pool => PoolConnection.connect(pool)))
  const remotes = new Map(request.remotes.map(path => [path, new LocalHandler(path)]))
  for (const [path, handler] of remotes) {
    await mkdir(path, { recursive: true })
    await handler.sync()
  }
  const vm = conn!.all('VM').find(v => v.name_label === request.vmName && v.is_a_snapshot !== true)!
  const [started, cpu, system] = [performance.now(), cpuSeconds(), systemSeconds()]
  const tree = await startBackupRun(job({ ...request, vms: { uuids: [vm.uuid] }, remotes: request.remotes }), { pools: new Map([conn!, ...others].map(c => [c.poolUuid, c])), remotes }).done
  const seconds = (performance.now() - started) / 1000
  const transfer = JSON.stringify(tree).match(/"message":"transfer"[^}]*"result":\{"size":(\d+)/)
  const result: ChildResult = { seconds, cpuSeconds: cpuSeconds() - cpu, systemSeconds: systemSeconds() - system, bytes: transfer === null ? 0 : Number(transfer[1]), maxRssMiB: peakRssMiB(), status: tree.status }
  process.stdout.write(`${JSON.stringify(result)}\n`)
  for (const c of [conn!, ...others]) await c.disconnect()
  process.exit(0)
}

async function runChild(request: ChildRequest): Promise<ChildResult> {
  const result = await runScript<ChildResult>(import.meta.filename, ['--child', JSON.stringify(request)])
  if (result.status !== 'success') throw new Error(`backup ${result.status}`)
  return result
}

async function startLabProcess(dataDir: string): Promise<{ info: LabInfo; stop: () => Promise<unknown> }> {
  const proc = spawn(process.execPath, ['bin/lifeboat.js', 'lab', 'serve', '--fixture', 'default', '--data', dataDir, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const line = await new Promise<string>(resolve => createInterface({ input: proc.stdout }).once('line', resolve))
  const exited = new Promise(resolve => proc.once('exit', resolve))
  return { info: JSON.parse(line) as LabInfo, stop: () => (proc.kill('SIGTERM'), exited) }
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

/** Reads an export to its end and throws it away (the source's own pace), or writes it to `to` by a plain pipeline; in seconds. */
async function drain(open: () => Promise<ExportStream>, to?: string): Promise<{ seconds: number; bytes: number }> {
  const started = performance.now()
  const { stream, task } = await open()
  let bytes = 0
  const counted = async function* () {
    for await (const chunk of stream) {
      bytes += (chunk as Buffer).length
      yield chunk as Buffer
    }
  }
  if (to === undefined) for await (const chunk of counted()) void chunk
  else await pipeline(counted, createWriteStream(to, { highWaterMark: 4 * MiB }))
  await task
  if (to !== undefined) await rm(to, { force: true })
  return { seconds: (performance.now() - started) / 1000, bytes }
}

const holder = (vm: string) => ({ runId: 'bench', vm, phase: 'export' })

/** The lab's VHD export of the VM's disk alone (a full), read and discarded. */
async function vhdExportAlone(conn: PoolConnection, vmName: string) {
  const vm = conn.all('VM').find(v => v.name_label === vmName && v.is_a_snapshot !== true)!
  return drain(() => exportVdiVhd(conn, vmDisks(conn, vm)[0]!.vdi.$ref, { holder: holder(vm.uuid) }))
}

/** The lab's XVA export alone, of a snapshot taken for it (an XVA exports a halted VM or a snapshot). */
async function xvaExportAlone(conn: PoolConnection, vmName: string, to?: string) {
  const vm = conn.all('VM').find(v => v.name_label === vmName && v.is_a_snapshot !== true)!
  const snapshot = (await conn.call('VM.snapshot', vm.$ref, 'bench xva export')) as string
  try {
    return await drain(() => exportVmXva(conn, snapshot, { holder: holder(vm.uuid) }), to)
  } finally {
    await destroyVmAndDisks(conn, snapshot)
  }
}

/** A restore through the lab against the lab's import alone of the same bytes from a file; the restored VMs and disks are destroyed. */
async function restoreAgainstImport(conn: PoolConnection, remote: string, pointId: string, scratch: string): Promise<{ restore: number; importAlone: number; bytes: number }> {
  const handler = new LocalHandler(remote)
  await handler.sync()
  const sr = conn.all('SR').find(record => record.name_label === 'NFS shared storage')!
  const started = performance.now()
  const restored = await restoreBackup(handler, pointId, conn, sr.uuid as string)
  const restore = (performance.now() - started) / 1000
  await conn.sync()
  await destroyVmAndDisks(conn, restored.vmRef)
  const point = (await listRestorePoints(handler)).find(p => p.id === pointId)!
  const file = join(scratch, 'import-source')
  let importAlone: number
  if (point.mode === 'full') {
    const xva = (await filesUnder(join(remote, 'xo-vm-backups'))).find(f => f.path.endsWith('.xva'))!.path
    const begun = performance.now()
    const vmRef = await importVmXva(conn, createReadStream(xva), (await stat(xva)).size, sr.$ref)
    importAlone = (performance.now() - begun) / 1000
    await conn.sync()
    await destroyVmAndDisks(conn, vmRef)
    return { restore, importAlone, bytes: (await stat(xva)).size }
  }
  // The chain as the one VHD a restore uploads, written to a file first; then that file imported onto a new disk.
  const newest = (await filesUnder(join(remote, 'xo-vm-backups'))).filter(f => f.path.endsWith('.vhd')).sort((x, y) => x.path.localeCompare(y.path)).at(-1)!.path
  const chain = await VhdChain.open(newest)
  const vhd = chain.toVhdStream()
  await pipeline(vhd.stream, createWriteStream(file))
  await chain.close()
  const vdi = (await conn.call('VDI.create', { SR: sr.$ref, virtual_size: String(chain.size), name_label: 'bench import', type: 'user', sharable: false, read_only: false, other_config: {} })) as string
  const begun = performance.now()
  await importVdiVhd(conn, vdi, createReadStream(file), vhd.length)
  importAlone = (performance.now() - begun) / 1000
  await conn.call('VDI.destroy', vdi)
  await rm(file)
  return { restore, importAlone, bytes: vhd.length }
}

const rate = (r: { bytes: number; seconds: number }) => r.bytes / MiB / r.seconds
const cpuPerGiB = (r: { bytes: number; cpuSeconds: number }) => r.cpuSeconds / (r.bytes / GiB)
/** Runs of a figure measured each with its own baselines: the full and XVA figures are the median of this many. */
const TRIALS = 3
/** The trial whose `ratio` is the median. */
const medianBy = <T>(trials: T[], ratio: (trial: T) => number): T => {
  const middle = median(trials.map(ratio))
  return trials.find(trial => ratio(trial) === middle)!
}
/** CPU per GiB with the kernel's share of it (page cache and socket copies) beside. */
const cpuText = (r: { bytes: number; cpuSeconds: number; systemSeconds?: number }) =>
  `${cpuPerGiB(r).toFixed(2)} s/GiB${r.systemSeconds === undefined ? '' : `, ${((100 * r.systemSeconds) / Math.max(r.cpuSeconds, 1e-9)).toFixed(0)}% in the kernel`}`

export interface BackupOptions {
  gib: number
  /** Figures to measure (ids); all when undefined. */
  only?: ReadonlySet<string>
  /** The figures beyond issue #18's (continuous replication, 2 remotes + 2 SRs): when run alone. */
  extras?: boolean
}

export const BACKUP_FIGURES = ['full', 'xva', 'delta', 'cpu-full', 'cpu-delta', 'cpu-xva', 'three-remotes', 'rss', 'restore-chain', 'restore-xva', 'window'] as const

async function uncapped(options: BackupOptions, root: string): Promise<Figure[]> {
  const wanted = (...ids: string[]) => options.only === undefined || ids.some(id => options.only!.has(id))
  const lab = await startLabProcess(join(root, 'lab'))
  const conn = await PoolConnection.connect(lab.info)
  const remote = (name: string) => join(root, name)
  const figures: Figure[] = []
  try {
    const { gib } = options
    console.log(`preparing: ${gib} GiB written into web-01's disk (4 GiB)…`)
    await fill(lab.info, conn, 'web-01', 4 * GiB, gib * GiB, 1)
    const base = { lab: lab.info, vmName: 'web-01', forceFull: false }
    const drConn = await PoolConnection.connect(lab.info.pools[1]!)
    const drSr = drConn.all('SR').find(sr => sr.name_label === 'DR storage')!.uuid
    await drConn.disconnect()
    const replication = { ...base, mode: 'delta' as const, remotes: [], srs: [drSr], jobId: 'bench-cr' }

    const needsChain = wanted('full', 'delta', 'cpu-full', 'cpu-delta', 'three-remotes', 'restore-chain')
    if (needsChain) {
      const full = await runChild({ ...base, mode: 'delta', remotes: [remote('one')] })
      const copy = await plainCopy(await largestFile(remote('one')), join(root, 'copy'))
      const source = await vhdExportAlone(conn, 'web-01')
      console.log(`\nplain copy of the full VHD on this disk: ${rate(copy).toFixed(0)} MiB/s (CPU ${cpuText(copy)}); the lab's VHD export alone (read and discarded): ${rate(source).toFixed(0)} MiB/s`)
      const line = (name: string, r: ChildResult, alone: { bytes: number; seconds: number }) =>
        console.log(`  ${name.padEnd(30)} ${rate(r).toFixed(0).padStart(5)} MiB/s, ratio to the copy ${(rate(r) / rate(copy)).toFixed(2)}, to the export alone ${(rate(r) / rate(alone)).toFixed(2)}; CPU ${cpuText(r)} (${(cpuPerGiB(r) / cpuPerGiB(copy)).toFixed(2)}× the copy's); peak RSS ${r.maxRssMiB.toFixed(0)} MiB`)
      const cpuFigure = (id: string, name: string, r: ChildResult) =>
        ({ id, name: `CPU s/GiB of the backing-up process, ${name}, vs a plain copy's`, today: '—', goal: { atMost: 2 }, value: cpuPerGiB(r) / cpuPerGiB(copy), baseline: `${cpuPerGiB(r).toFixed(2)} vs ${cpuPerGiB(copy).toFixed(2)} s/GiB` })
      line('full (first VHD of a chain)', full, source)
      // Two more fulls (jobs of their own, so that the chain above stays the delta's base), each with the export
      // alone and a copy right after it: this machine's noise is shared, and the median of the three is the figure.
      const trials = [{ full, source, copy }]
      if (wanted('full', 'cpu-full')) {
        for (let k = 1; k < TRIALS; k++) {
          const folder = remote(`full-${k}`)
          const again = await runChild({ ...base, mode: 'delta', forceFull: true, jobId: `bench-full-${k}`, remotes: [folder] })
          trials.push({ full: again, source: await vhdExportAlone(conn, 'web-01'), copy: await plainCopy(await largestFile(folder), join(root, 'copy')) })
          line(`full, trial ${k + 1}`, again, trials[k]!.source)
          await rm(folder, { recursive: true, force: true })
        }
      }
      const fullRatio = medianBy(trials, t => rate(t.full) / rate(t.source))
      const cpuRatio = medianBy(trials, t => cpuPerGiB(t.full) / cpuPerGiB(t.copy))
      if (wanted('full')) figures.push({ id: 'full', name: `full backup (first VHD of a chain) vs the lab's export alone, median of ${trials.length}`, today: '0.41', goal: { atLeast: 0.8 }, value: rate(fullRatio.full) / rate(fullRatio.source), baseline: `${rate(fullRatio.full).toFixed(0)} vs ${rate(fullRatio.source).toFixed(0)} MiB/s` })
      if (wanted('cpu-full')) figures.push({ ...cpuFigure('cpu-full', `full, median of ${trials.length}`, cpuRatio.full), value: cpuPerGiB(cpuRatio.full) / cpuPerGiB(cpuRatio.copy), baseline: `${cpuPerGiB(cpuRatio.full).toFixed(2)} vs ${cpuPerGiB(cpuRatio.copy).toFixed(2)} s/GiB` })

      if (options.extras === true) await runChild(replication)
      await fill(lab.info, conn, 'web-01', 4 * GiB, 512 * MiB, 3, 256 * MiB)
      const delta = await runChild({ ...base, mode: 'delta', remotes: [remote('one')] })
      line('delta (512 MiB changed)', delta, source)
      if (wanted('delta')) figures.push({ id: 'delta', name: 'delta backup (512 MiB changed) vs the lab\'s export alone', today: '0.31', goal: { atLeast: 0.8 }, value: rate(delta) / rate(source), baseline: `${rate(delta).toFixed(0)} vs ${rate(source).toFixed(0)} MiB/s (full export)` })
      if (wanted('cpu-delta')) figures.push(cpuFigure('cpu-delta', 'delta', delta))
      if (options.extras === true) {
        const changedCopy = await plainCopy(await newestFile(remote('one')), join(root, 'copy'))
        const crDelta = await runChild(replication)
        console.log(`  continuous replication, delta (512 MiB changed) onto the DR pool's SR: ${rate(crDelta).toFixed(0)} MiB/s (${(crDelta.bytes / MiB).toFixed(0)} MiB in ${crDelta.seconds.toFixed(1)} s, snapshot, clones and replica marks included); a plain copy of the changed bytes: ${rate(changedCopy).toFixed(0)} MiB/s; ratio ${(rate(crDelta) / rate(changedCopy)).toFixed(2)}`)
      }
      if (wanted('restore-chain')) {
        // Three more deltas make a chain of 5 (the full and 4 deltas), restored whole through the lab.
        for (let k = 0; k < 3; k++) {
          await fill(lab.info, conn, 'web-01', 4 * GiB, 64 * MiB, 10 + k, (1 + k) * 512 * MiB)
          await runChild({ ...base, mode: 'delta', remotes: [remote('one')] })
        }
        const points = (await listRestorePoints(new LocalHandler(remote('one')))).sort((x, y) => x.timestamp - y.timestamp)
        const r = await restoreAgainstImport(conn, remote('one'), points.at(-1)!.id, root)
        console.log(`  restore of a chain of ${points.length} through the lab: ${(r.bytes / MiB / r.restore).toFixed(0)} MiB/s; the lab's import alone of the same VHD from a file: ${(r.bytes / MiB / r.importAlone).toFixed(0)} MiB/s`)
        figures.push({ id: 'restore-chain', name: `restore of a chain of ${points.length} through the lab vs the lab's import alone`, today: '—', goal: { atLeast: 0.8 }, value: r.importAlone / r.restore, baseline: `${(r.bytes / MiB / r.restore).toFixed(0)} vs ${(r.bytes / MiB / r.importAlone).toFixed(0)} MiB/s` })
      }
      if (wanted('three-remotes')) {
        const three = await runChild({ ...base, mode: 'delta', forceFull: true, remotes: [remote('three-a'), remote('three-b'), remote('three-c')] })
        const one = await runChild({ ...base, mode: 'delta', forceFull: true, remotes: [remote('three-one')] })
        // The floor on this machine: the same bytes written into 3 files of this disk against into 1, by plain copies.
        const newest = await largestFile(remote('three-one'))
        const [teeThree, teeOne] = [await plainTee(newest, 3, root), await plainTee(newest, 1, root)]
        console.log(`  3 remotes vs 1 (forced full, ${(three.bytes / GiB).toFixed(2)} GiB): ${three.seconds.toFixed(1)} s vs ${one.seconds.toFixed(1)} s; a plain copy into 3 files vs into 1 on this disk: ${teeThree.seconds.toFixed(1)} s vs ${teeOne.seconds.toFixed(1)} s (${(teeThree.seconds / teeOne.seconds).toFixed(2)}), CPU ${teeThree.cpuSeconds.toFixed(1)} vs ${teeOne.cpuSeconds.toFixed(1)} s`)
        figures.push({ id: 'three-remotes', name: '3 remotes vs 1 remote, time (forced full)', today: '1.62', goal: { atMost: 1.15 }, value: three.seconds / one.seconds, baseline: `${three.seconds.toFixed(1)} vs ${one.seconds.toFixed(1)} s; plain copies into 3 files ${teeThree.seconds.toFixed(1)} s` })
        if (options.extras === true) {
          // One snapshot fed to 2 remotes and to an SR of each pool (continuous replication), against the same backup to one remote.
          const nfsSr = conn.all('SR').find(sr => sr.name_label === 'NFS shared storage')!.uuid as string
          const fan = await runChild({ ...base, mode: 'delta', forceFull: true, jobId: 'bench-fan', remotes: [remote('fan-a'), remote('fan-b')], srs: [nfsSr, drSr] })
          console.log(`  2 remotes + 2 SRs on two pools vs 1 remote (forced full): ${fan.seconds.toFixed(1)} s vs ${one.seconds.toFixed(1)} s, time ratio ${(fan.seconds / one.seconds).toFixed(2)}`)
        }
      }
    }
    if (wanted('xva', 'cpu-xva', 'restore-xva')) {
      // Three XVA backups, each with the export alone, the export written by a plain pipeline and a copy right
      // after it; the first one's remote is kept for the restore. The figures are the medians.
      const xvaTrials = []
      for (let k = 0; k < (wanted('xva', 'cpu-xva') ? TRIALS : 1); k++) {
        const folder = remote(k === 0 ? 'xva' : `xva-${k}`)
        const xva = await runChild({ ...base, mode: 'full', jobId: `bench-xva-${k}`, remotes: [folder] })
        const copy = await plainCopy(await largestFile(folder), join(root, 'copy'))
        const source = await xvaExportAlone(conn, 'web-01')
        // The floor: the export and this disk's writes share the 2 cores (the lab builds the XVA and its checksums).
        const written = await xvaExportAlone(conn, 'web-01', join(root, 'xva-plain'))
        console.log(`  full-mode XVA${k === 0 ? '' : `, trial ${k + 1}`}: ${rate(xva).toFixed(0)} MiB/s; the lab's XVA export alone ${rate(source).toFixed(0)} MiB/s, written to a file by a plain pipeline ${rate(written).toFixed(0)} MiB/s (${(rate(xva) / rate(written)).toFixed(2)} of it), a plain copy of the XVA ${rate(copy).toFixed(0)} MiB/s; CPU ${cpuText(xva)} (copy ${cpuText(copy)})`)
        xvaTrials.push({ xva, copy, source, written })
        if (k > 0) await rm(folder, { recursive: true, force: true })
      }
      const byRate = medianBy(xvaTrials, t => rate(t.xva) / rate(t.source))
      const byCpu = medianBy(xvaTrials, t => cpuPerGiB(t.xva) / cpuPerGiB(t.copy))
      const { xva, source, written } = byRate
      const { copy } = byCpu
      if (wanted('xva')) figures.push({ id: 'xva', name: `full-mode XVA backup vs the lab's XVA export alone, median of ${xvaTrials.length}`, today: '0.30', goal: { atLeast: 0.8 }, value: rate(xva) / rate(source), baseline: `${rate(xva).toFixed(0)} vs ${rate(source).toFixed(0)} MiB/s; export to a file ${rate(written).toFixed(0)}` })
      if (wanted('cpu-xva')) figures.push({ id: 'cpu-xva', name: `CPU s/GiB of the backing-up process, XVA, median of ${xvaTrials.length}, vs a plain copy's`, today: '—', goal: { atMost: 2 }, value: cpuPerGiB(byCpu.xva) / cpuPerGiB(copy), baseline: `${cpuPerGiB(byCpu.xva).toFixed(2)} vs ${cpuPerGiB(copy).toFixed(2)} s/GiB` })
      if (wanted('restore-xva')) {
        const point = (await listRestorePoints(new LocalHandler(remote('xva'))))[0]!
        const r = await restoreAgainstImport(conn, remote('xva'), point.id, root)
        console.log(`  XVA restore through the lab: ${(r.bytes / MiB / r.restore).toFixed(0)} MiB/s; the lab's import alone of the same XVA: ${(r.bytes / MiB / r.importAlone).toFixed(0)} MiB/s`)
        figures.push({ id: 'restore-xva', name: 'XVA restore through the lab vs the lab\'s import alone', today: '—', goal: { atLeast: 0.8 }, value: r.importAlone / r.restore, baseline: `${(r.bytes / MiB / r.restore).toFixed(0)} vs ${(r.bytes / MiB / r.importAlone).toFixed(0)} MiB/s` })
      }
    }
    if (wanted('rss')) {
      await fill(lab.info, conn, 'web-02', 4 * GiB, 1 * GiB, 2)
      const small = await runChild({ lab: lab.info, vmName: 'web-02', mode: 'delta', forceFull: true, remotes: [remote('rss-1')] })
      await fill(lab.info, conn, 'web-02', 4 * GiB, 3 * GiB, 4, 1 * GiB)
      const big = await runChild({ lab: lab.info, vmName: 'web-02', mode: 'delta', forceFull: true, remotes: [remote('rss-4')] })
      const allocated = (r: ChildResult) => `${(r.bytes / GiB).toFixed(2)} GiB`
      const idle = await runScript<ChildFigures>(import.meta.filename, ['--idle'])
      console.log(`  peak RSS of the backing-up process: ${small.maxRssMiB.toFixed(0)} MiB with ${allocated(small)} allocated, ${big.maxRssMiB.toFixed(0)} MiB with ${allocated(big)} allocated; the same process with its code loaded and nothing done: ${idle.maxRssMiB.toFixed(0)} MiB (what the backup adds: ${(small.maxRssMiB - idle.maxRssMiB).toFixed(0)} and ${(big.maxRssMiB - idle.maxRssMiB).toFixed(0)} MiB)`)
      figures.push({ id: 'rss', name: 'peak RSS, 4 GiB vs 1 GiB allocated', today: '1.17', goal: { atMost: 1.05 }, value: big.maxRssMiB / small.maxRssMiB, baseline: `${big.maxRssMiB.toFixed(0)} vs ${small.maxRssMiB.toFixed(0)} MiB` })
      figures.push({ id: 'rss', name: 'peak RSS with 4 GiB allocated, MiB', today: '211', goal: { atMost: 150 }, value: big.maxRssMiB, baseline: `${allocated(big)} backed up; ${idle.maxRssMiB.toFixed(0)} MiB with the code loaded, idle` })
    }
    return figures
  } finally {
    await conn.disconnect()
    await lab.stop()
  }
}

/**
 * The least time the lab's model allows for the window (stated with the figure): every pool's bytes at its
 * host cap after its first snapshot; on every SR, snapshots one at a time (snapshotMs each, SM's per-SR lock),
 * so that with the longest exports snapshotted first the k-th disk can start at k·snapshotMs and takes its
 * bytes at the per-stream cap. Not in it: the engine's own steps (connecting, metadata, retention), which are
 * what the ratio measures.
 */
export function windowMinimum(pools: Array<{ srs: Array<{ diskBytes: number[] }> }>, caps: { perStreamMiBs: number; hostMiBs: number; snapshotMs: number }): number {
  let minimum = 0
  for (const pool of pools) {
    const poolBytes = pool.srs.flatMap(sr => sr.diskBytes).reduce((sum, bytes) => sum + bytes, 0)
    minimum = Math.max(minimum, caps.snapshotMs / 1000 + poolBytes / MiB / caps.hostMiBs)
    for (const sr of pool.srs) {
      const longestFirst = [...sr.diskBytes].sort((a, b) => b - a)
      longestFirst.forEach((bytes, k) => (minimum = Math.max(minimum, ((k + 1) * caps.snapshotMs) / 1000 + bytes / MiB / caps.perStreamMiBs)))
    }
  }
  return minimum
}

async function window(root: string): Promise<Figure> {
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
    const snapshotMs = lab.pools[0]!.control.setKnobs({}).snapshotMs
    await mkdir(join(root, 'window-remote'))
    const handler = new LocalHandler(join(root, 'window-remote'))
    await handler.sync()
    const theJob = job({ mode: 'delta', forceFull: false, vms: { smart: {} }, remotes: ['window'], concurrency: 0 })
    const started = performance.now()
    const tree = await startBackupRun(theJob, { pools: new Map(conns.map(c => [c.poolUuid, c])), remotes: new Map([['window', handler]]) }).done
    const seconds = (performance.now() - started) / 1000
    let vms = 0
    const pools = conns.map(conn => {
      const bySr = new Map<string, number[]>()
      for (const vmTask of tree.tasks ?? []) {
        const vm = conn.byUuid(String(vmTask.data?.id))
        if (vm === undefined) continue
        vms++
        const exports = vmTask.tasks?.filter(t => t.message === 'export') ?? []
        const srs = vmDisks(conn, vm).map(({ vdi }) => String(vdi.SR))
        exports.forEach((exportTask, k) => {
          const size = Number((exportTask.tasks?.[0]?.result as { size?: number } | undefined)?.size ?? 0)
          const sr = srs[k] ?? srs[0] ?? 'unknown'
          bySr.set(sr, [...(bySr.get(sr) ?? []), size])
        })
      }
      return { srs: [...bySr.values()].map(diskBytes => ({ diskBytes })) }
    })
    const minimum = windowMinimum(pools, { perStreamMiBs: perStream, hostMiBs: hostCap, snapshotMs })
    console.log(`\nbackup window, ${vms} VMs of the default lab (status ${tree.status}), caps ${perStream} MiB/s per stream and ${hostCap} MiB/s per host, snapshots ${snapshotMs} ms each, one at a time per SR:`)
    console.log(`  ${seconds.toFixed(1)} s against a theoretical minimum of ${minimum.toFixed(1)} s = max over pools of (one snapshot + the pool's bytes at the host cap) and over each SR's disks, longest first, of (k snapshots + the disk's bytes at the stream cap)`)
    return { id: 'window', name: '12-VM window under the seed\'s caps vs its theoretical minimum', today: '1.64', goal: { atMost: 1.1 }, value: seconds / Math.max(minimum, 0.001), baseline: `${seconds.toFixed(1)} vs ${minimum.toFixed(1)} s` }
  } finally {
    for (const conn of conns) await conn.disconnect()
    await lab.stop()
  }
}

/** Measures the backup figures, printing each one's detail; returns the figures of issue #18. */
export async function backupFigures(options: BackupOptions): Promise<Figure[]> {
  const root = await mkdtemp(join(tmpdir(), 'lifeboat-bench-backup-'))
  try {
    const figures = options.only === undefined || BACKUP_FIGURES.some(id => id !== 'window' && options.only!.has(id)) ? await uncapped(options, root) : []
    if (options.only === undefined || options.only.has('window')) figures.push(await window(root))
    return figures
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

if (isMain(import.meta)) {
  const { values } = parseArgs({ options: { child: { type: 'string' }, idle: { type: 'boolean' }, gib: { type: 'string', default: '2' } } })
  // The floor of the RSS figures: a backing-up process that has loaded its code (tsx, the engine, the SDKs) and does nothing.
  if (values.idle === true) process.stdout.write(`${JSON.stringify({ seconds: 0, cpuSeconds: 0, maxRssMiB: peakRssMiB() })}\n`)
  else if (values.child !== undefined) await child(JSON.parse(values.child) as ChildRequest)
  else printFigures(await backupFigures({ gib: Number(values.gib), extras: true }))
}
