// A clean that dies in the middle (an exception at its Nth change to the remote, or the process SIGKILLed
// at a random change or after a random delay) is finished by the next clean, ending with the same files
// and bytes as a clean that was never interrupted: with VHD file chains (merged in place) and VhdDirectory
// chains (merged by block copies through their aliases).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { cp, mkdir, readdir, readFile, stat } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gunzipSync } from 'node:zlib'
import { applyRetention, cleanVm, vmDir } from '../../source/repository/index.ts'
import { LocalHandler } from '../../source/storage/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { JOB, SCHEDULE, VM, chainHash, crashingRemote, modelHash, newDisks, random, vhdPath, writeDeltaBackup, type DiskHistory } from './clean-fixtures.ts'

const REPO = fileURLToPath(new URL('../..', import.meta.url))
const GENERATIONS = 6
const KEPT = [4, 5]

/** Six backups of two 8 MiB disks (VHD files, or VhdDirectories behind aliases), retention keep 2 applied: the merges are left for the clean. */
async function prepare(root: string, directory: boolean): Promise<DiskHistory[]> {
  await mkdir(root)
  const handler = new LocalHandler(root)
  const disks = newDisks(2, 4)
  const rand = random(1234)
  for (let g = 0; g < GENERATIONS; g++) await writeDeltaBackup(handler, disks, g, rand, { directory })
  await applyRetention(handler, VM, { jobId: JOB, scheduleId: SCHEDULE, keep: KEPT.length })
  return disks
}

/** Every file of the VM folder: VHDs by content hash, metadata and cache parsed. */
async function snapshot(root: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {}
  const walk = async (dir: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      const path = join(dir, name)
      if ((await stat(path)).isDirectory()) await walk(path)
      else if (name.endsWith('.json')) out[relative(root, path)] = JSON.parse((await readFile(path)).toString())
      else if (name.endsWith('.gz')) out[relative(root, path)] = JSON.parse(gunzipSync(await readFile(path)).toString())
      else out[relative(root, path)] = createHash('sha256').update(await readFile(path)).digest('hex')
    }
  }
  await walk(join(root, vmDir(VM)))
  return out
}

async function hasMergeState(root: string): Promise<boolean> {
  for (const d of [0, 1]) {
    const folder = join(root, vhdPath(d, 0), '..')
    if ((await readdir(folder)).some(name => name.endsWith('.merge.json'))) return true
  }
  return false
}

async function assertRecovered(root: string, reference: Record<string, unknown>, disks: DiskHistory[], directory: boolean, what: string): Promise<void> {
  const result = await cleanVm(new LocalHandler(root), VM)
  assert.deepEqual(await snapshot(root), reference, what)
  for (const g of KEPT) for (const d of [0, 1]) assert.equal(await chainHash(root, vhdPath(d, g, directory)), modelHash(disks[d]!, g), `${what}: disk ${d} of backup ${g}`)
  assert.deepEqual(result.warnings.filter(w => !w.startsWith('temporary file')), [], what)
}

const CHILD = `
import { writeSync } from 'node:fs'
import { cleanVm } from ${JSON.stringify(join(REPO, 'source/repository/index.ts'))}
import { crashingRemote, VM } from ${JSON.stringify(join(REPO, 'test/repository/clean-fixtures.ts'))}
const { root, stopAt } = JSON.parse(process.env.LIFEBOAT_CLEAN_CHILD)
const { handler } = crashingRemote(root, stopAt ?? Infinity, () => {
  writeSync(1, 'STOP\\n')
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0) // until SIGKILL
  throw new Error('not killed')
})
writeSync(1, 'READY\\n')
await cleanVm(handler, VM)
writeSync(1, 'DONE\\n')
`

/** Runs a clean in a child process and SIGKILLs it when it reaches change `stopAt`, or `delayMs` after it started. */
function killedClean(root: string, kill: { stopAt: number } | { delayMs: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, LIFEBOAT_CLEAN_CHILD: JSON.stringify({ root, stopAt: 'stopAt' in kill ? kill.stopAt : null }) }
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    let timer: NodeJS.Timeout | undefined
    child.stdout.on('data', (data: Buffer) => {
      out += data.toString()
      if ('stopAt' in kill && out.includes('STOP')) child.kill('SIGKILL')
      if ('delayMs' in kill && out.includes('READY') && timer === undefined) timer = setTimeout(() => child.kill('SIGKILL'), kill.delayMs).unref()
    })
    child.stderr.on('data', (data: Buffer) => (err += data.toString()))
    child.on('error', reject)
    child.on('close', (code, signal) => {
      if (signal === 'SIGKILL' || code === 0) resolve(out.includes('DONE') ? 'finished' : 'killed')
      else reject(new Error(`the clean child exited ${code}: ${err}`))
    })
  })
}

for (const directory of [false, true]) {
  const kind = directory ? 'VhdDirectory chains' : 'VHD file chains'

  test(`${kind}: a clean that fails at any change to the remote is finished by the next clean, with the same bytes`, async () => {
    const dir = await tempDir('lifeboat-crash-')
    try {
      const template = join(dir.path, 'template')
      const disks = await prepare(template, directory)
      const referenceRoot = join(dir.path, 'reference')
      await cp(template, referenceRoot, { recursive: true })
      const counting = crashingRemote(referenceRoot, Infinity, () => assert.fail('never stops'))
      const referenceResult = await cleanVm(counting.handler, VM)
      assert.equal(referenceResult.merged, 8)
      const reference = await snapshot(referenceRoot)
      const changes = counting.changes()
      assert.ok(changes > 10, `a clean with 2 merges makes more than 10 changes (${changes})`)

      let midMerge = 0
      const step = Math.max(1, Math.floor(changes / 40))
      for (let stopAt = 1; stopAt <= changes; stopAt += step) {
        const root = join(dir.path, `crash-${stopAt}`)
        await cp(template, root, { recursive: true })
        const { handler } = crashingRemote(root, stopAt, () => {
          throw new Error('simulated crash')
        })
        await cleanVm(handler, VM).catch(() => {})
        if (await hasMergeState(root)) midMerge++
        await assertRecovered(root, reference, disks, directory, `crash at change ${stopAt} of ${changes}`)
      }
      assert.ok(midMerge > 0, 'some crashes happened in the middle of a merge')
    } finally {
      await dir.cleanup()
    }
  })

  test(`${kind}: a clean process SIGKILLed at a random merge step or after a random delay is resumed by the next clean`, async () => {
    const dir = await tempDir('lifeboat-kill-')
    try {
      const template = join(dir.path, 'template')
      const disks = await prepare(template, directory)
      const referenceRoot = join(dir.path, 'reference')
      await cp(template, referenceRoot, { recursive: true })
      const counting = crashingRemote(referenceRoot, Infinity, () => assert.fail('never stops'))
      const started = Date.now()
      await cleanVm(counting.handler, VM)
      const duration = Date.now() - started
      const reference = await snapshot(referenceRoot)

      const rand = random(Number(process.env.FC_SEED ?? Date.now() % 2 ** 31))
      let interrupted = 0
      for (let round = 0; round < 6; round++) {
        const root = join(dir.path, `kill-${round}`)
        await cp(template, root, { recursive: true })
        const kill = round % 2 === 0 ? { stopAt: 2 + Math.floor(rand() * counting.changes() * 0.75) } : { delayMs: Math.floor(rand() * duration * 2) }
        const outcome = await killedClean(root, kill)
        if (outcome === 'killed' && (await hasMergeState(root))) interrupted++
        await assertRecovered(root, reference, disks, directory, `round ${round} (${JSON.stringify(kill)}, ${outcome})`)
      }
      assert.ok(interrupted > 0, 'at least one kill landed in the middle of a merge')
    } finally {
      await dir.cleanup()
    }
  })
}
