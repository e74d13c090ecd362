// What verifying costs, against a plain read of the same files.
// Run: node --import tsx test/bench/verify.ts [--mib 512]
// Backs up a lab VM with --mib MiB written into its disk: a delta chain (a full and a delta of a quarter of it)
// to a local remote of VHD files and to one of VhdDirectories (brotli), and a full (XVA) backup to a third.
// For each kind it prints the MiB/s of a plain read of every file of the VM's backups (through the remote
// handler, the page cache warmed first), of verify (structure only) and of verify --read-data, each over the
// bytes stored, and the ratio of each verify's speed to the plain read's.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startBackupRun } from '../../source/engine/index.ts'
import { parseJob } from '../../source/engine/jobs/index.ts'
import { startLab } from '../../source/lab/index.ts'
import { verifyVm } from '../../source/repository/index.ts'
import { openRemote, type RemoteHandler } from '../../source/storage/index.ts'
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
  } finally {
    await conn.disconnect()
    await lab.stop()
    await dir.cleanup()
  }
}

main().catch(error => {
  console.error(error)
  process.exit(1)
})
