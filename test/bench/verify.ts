// What verifying costs, against a plain read of the same files.
// Run: node --import tsx test/bench/verify.ts [--mib 512]
// Backs up a lab VM with --mib MiB written into its disk: a delta chain (a full and a delta of a quarter of it)
// to a local remote of VHD files and to one of VhdDirectories (brotli), and a full (XVA) backup to a third.
// For each kind it prints the MiB/s of a plain read of every file of the VM's backups (through the remote
// handler, the page cache warmed first), of verify (structure only) and of verify --read-data, each over the
// bytes stored, and the ratio of each verify's speed to the plain read's (--read-data checks every VHD block
// against its block hashes). Then the block hashes' cost on a backup: the same disk (--mib MiB of blocks)
// written to a local remote as a VHD file and as a VhdDirectory by the backup's writers (with hashes and their
// sidecar) and by the bare format writers (without), alternated 5 times, the median of each and their ratio.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startBackupRun } from '../../source/engine/index.ts'
import { parseJob } from '../../source/engine/jobs/index.ts'
import { startLab } from '../../source/lab/index.ts'
import { createVhdStream, writeVhdAlias, writeVhdDirectory, type VhdStreamOptions } from '../../source/formats/vhd/index.ts'
import { loadXxh64 } from '../../source/formats/xxhash.ts'
import { verifyVm, writeBackupVhdDirectory, writeBackupVhdFile } from '../../source/repository/index.ts'
import { fileSystemAccess, openRemote, type RemoteHandler } from '../../source/storage/index.ts'
import { PoolConnection, vmDisks } from '../../source/xapi/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { walkRemote } from '../engine/helpers.ts'

const MiB = 1024 * 1024
const { values } = parseArgs({ options: { mib: { type: 'string', default: '512' } } })
const mib = Number(values.mib)

async function main(): Promise<void> {
  const dir = await tempDir('lifeboat-bench-verify-')
  const lab = await startLab({ dataDir: join(dir.path, 'lab'), fixture: 'tiny' })
  const pool = lab.pools[0]!
  const conn = await PoolConnection.connect({ url: pool.url, username: pool.username, password: pool.password })
  try {
    const vm = conn.all('VM').find(v => v.name_label === 'tiny-running' && v.is_a_snapshot !== true)!
    const vdi = vmDisks(conn, vm)[0]!.vdi
    const size = Math.ceil((mib * MiB) / (2 * MiB)) * 2 * MiB + 16 * MiB
    if (Number(vdi.virtual_size) < size) await conn.call('VDI.resize', vdi.$ref, String(size))
    for (let offset = 0; offset < mib * MiB; offset += 256 * MiB) await pool.control.writeVdi(vdi.uuid as string, { offset, length: Math.min(256 * MiB, mib * MiB - offset), seed: 9 })

    const remotes = new Map<string, RemoteHandler>()
    for (const [name, query] of [['files', ''], ['dirs', '?useVhdDirectory=true'], ['xva', '']] as const) {
      await mkdir(join(dir.path, name))
      const handler = openRemote(`file://${join(dir.path, name)}${query}`)
      await handler.sync()
      remotes.set(name, handler)
    }
    const context = { pools: new Map([[conn.poolUuid, conn]]), remotes }
    const schedules = [{ id: 'bench', name: 'bench', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 5, snapshots: 1 } }]
    const run = async (mode: 'full' | 'delta', targets: string[]) => {
      const tree = await startBackupRun(parseJob({ id: `bench-${mode}`, name: `bench ${mode}`, mode, vms: { uuids: [vm.uuid] }, remotes: targets, schedules }), context).done
      if (tree.status !== 'success') throw new Error(`the ${mode} backup ended ${tree.status}`)
    }
    await run('delta', ['files', 'dirs'])
    await pool.control.writeVdi(vdi.uuid as string, { offset: 0, length: Math.ceil(mib / 4) * MiB, seed: 10 })
    await run('delta', ['files', 'dirs'])

    await run('full', ['xva'])
    const cases: Array<[string, RemoteHandler]> = [['VHD files (a full and a delta)', remotes.get('files')!], ['VhdDirectory, brotli (a full and a delta)', remotes.get('dirs')!], ['XVA (a full backup)', remotes.get('xva')!]]

    console.log(`verify against a plain read of the same files (${mib} MiB written, then ${Math.ceil(mib / 4)} MiB changed; MiB/s over the bytes stored):`)
    console.log(`  ${'backups'.padEnd(40)}${'stored'.padStart(10)}${'plain read'.padStart(12)}${'verify'.padStart(10)}${'ratio'.padStart(8)}${'--read-data'.padStart(13)}${'ratio'.padStart(8)}`)
    for (const [name, handler] of cases) {
      const files = await walkRemote(handler, `xo-vm-backups/${vm.uuid}`)
      const readAll = async () => {
        let bytes = 0
        for (const path of files) for await (const chunk of await handler.createReadStream(path)) bytes += (chunk as Buffer).length
        return bytes
      }
      await readAll() // the page cache warm for every reader alike
      const plainStart = performance.now()
      const stored = await readAll()
      const plain = (performance.now() - plainStart) / 1000
      const timed = async (readData: boolean) => {
        const start = performance.now()
        const verdicts = await verifyVm(handler, vm.uuid, { readData })
        if (verdicts.some(verdict => verdict.findings.length > 0)) throw new Error(`${name}: a backup failed verification`)
        return (performance.now() - start) / 1000
      }
      const structure = await timed(false)
      const data = await timed(true)
      const rate = (seconds: number) => stored / MiB / seconds
      console.log(
        `  ${name.padEnd(40)}${`${(stored / MiB).toFixed(0)} MiB`.padStart(10)}${rate(plain).toFixed(0).padStart(12)}${rate(structure).toFixed(0).padStart(10)}${(plain / structure).toFixed(2).padStart(8)}${rate(data).toFixed(0).padStart(13)}${(plain / data).toFixed(2).padStart(8)}`,
      )
    }
    for (const handler of remotes.values()) await handler.close()
    await hashingCost(dir.path)
  } finally {
    await conn.disconnect()
    await lab.stop()
    await dir.cleanup()
  }
}

/** A backup's disk writes with and without block hashes, the same blocks each time. */
async function hashingCost(root: string): Promise<void> {
  const count = Math.max(1, Math.ceil(mib / 2))
  const distinct = Array.from({ length: 16 }, (_, k) => Buffer.alloc(2 * MiB, k * 37 + 1).fill(k, k * 4096, k * 4096 + 100_000))
  const disk = (): VhdStreamOptions => ({
    size: count * 2 * MiB, uuid: '0b3e6a9c-1111-4a2b-8c3d-0000000be7c4', blockIndexes: Array.from({ length: count }, (_, k) => k),
    blocks: (async function* () {
      for (let k = 0; k < count; k++) yield { index: k, data: distinct[k % distinct.length]! }
    })(),
  })
  await mkdir(join(root, 'cost'))
  const handler = openRemote(`file://${join(root, 'cost')}`)
  await handler.sync()
  const fs = fileSystemAccess(handler)
  const vmUuid = '0b3e6a9c-1111-4a2b-8c3d-00000000c057'
  let n = 0
  const writers: Record<string, Record<'with' | 'without', () => Promise<unknown>>> = {
    'VHD file': {
      with: () => writeBackupVhdFile(handler, vmUuid, `vdis/j/d/${n++}.vhd`, disk()),
      without: () => {
        const { length, stream } = createVhdStream(disk())
        return handler.outputStream(`xo-vm-backups/${vmUuid}/vdis/j/d/${n++}.vhd`, stream, { length })
      },
    },
    'VhdDirectory, brotli': {
      with: () => writeBackupVhdDirectory(handler, vmUuid, `vdis/j/d/${n++}.alias.vhd`, disk()),
      without: async () => {
        const alias = `xo-vm-backups/${vmUuid}/vdis/j/d/${n++}.alias.vhd`
        const data = alias.replace(/([^/]+)\.alias\.vhd$/, 'data/$1.vhd')
        await writeVhdDirectory(data, { ...disk(), fs, compression: 'brotli' })
        await writeVhdAlias(fs, alias, data)
      },
    },
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
  console.log(`block hashes' cost on a backup's disk writes (${count} blocks of 2 MiB, local remote; median of 5, seconds):`)
  console.log(`  ${'disk'.padEnd(40)}${'without'.padStart(10)}${'with'.padStart(10)}${'ratio'.padStart(8)}`)
  for (const [name, writer] of Object.entries(writers)) {
    const times = { with: [] as number[], without: [] as number[] }
    for (let round = 0; round < 5; round++) {
      for (const kind of round % 2 === 0 ? (['without', 'with'] as const) : (['with', 'without'] as const)) {
        const start = performance.now()
        await writer[kind]()
        times[kind].push((performance.now() - start) / 1000)
      }
      await handler.rmtree(`xo-vm-backups/${vmUuid}`)
    }
    const [without, withHashes] = [median(times.without), median(times.with)]
    console.log(`  ${name.padEnd(40)}${without.toFixed(2).padStart(10)}${withHashes.toFixed(2).padStart(10)}${(withHashes / without).toFixed(3).padStart(8)}`)
  }
  await handler.close()
  // The hash alone, for comparison with a source's speed (a VDI export: tens of MiB/s): what a real backup pays.
  const h64 = await loadXxh64()
  const start = performance.now()
  for (let k = 0; k < count; k++) h64(distinct[k % distinct.length]!)
  console.log(`  XXH64 alone: ${((count * 2) / ((performance.now() - start) / 1000)).toFixed(0)} MiB/s on this machine`)
}

main().catch(error => {
  console.error(error)
  process.exit(1)
})
