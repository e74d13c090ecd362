// The import watch of restore and disaster recovery against the lab: the VM it reports is the one its own
// import creates, never another import's on the same pool (a failed import destroys what its watch saw).
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { after, before, test } from 'node:test'
import { discardImport, watchImport } from '../../source/engine/import-watch.ts'
import { exportVmXva, importVmXva, type PoolConnection, type XapiRecord } from '../../source/xapi/index.ts'
import { startEngineLab, vmByName, type EngineLab } from './helpers.ts'

let env: EngineLab
let conn: PoolConnection
let xva: Buffer
let sr: XapiRecord

before(async () => {
  env = await startEngineLab()
  conn = env.conns[0]!
  sr = conn.all('SR').find(s => s.content_type !== 'iso')!
  const source = await exportVmXva(conn, vmByName(conn, 'tiny-halted').$ref, { holder: { runId: 'test', jobId: 'test', vm: 'tiny-halted', vmName: 'tiny-halted', phase: 'export' } })
  const chunks: Buffer[] = []
  for await (const chunk of source.stream) chunks.push(chunk as Buffer)
  xva = Buffer.concat(chunks)
})
after(async () => env.cleanup())

const importingVm = (exclude: Set<string>) =>
  conn.waitFor(() => conn.all('VM').find(vm => !exclude.has(vm.$ref) && Object.values((vm.current_operations ?? {}) as Record<string, string>).includes('import')), { what: 'an importing VM', timeoutMs: 30_000 })

test('a watch started before another import on the pool does not take that import\'s VM for its own', async () => {
  const watch = watchImport(conn)
  // Another import: its ova.xml is in, the rest held back, so its VM stays there importing.
  const held = new PassThrough()
  const other = importVmXva(conn, held, undefined, sr.$ref)
  other.catch(() => {})
  held.write(xva.subarray(0, 64 * 1024))
  const otherVm = await importingVm(new Set())
  let ours: string | undefined
  try {
    await conn.sync()
    assert.equal(watch.seen(), undefined, 'the other import\'s VM is not this watch\'s')
    const body = new PassThrough()
    const imported = importVmXva(conn, body, xva.length, sr.$ref, undefined, watch.onTask)
    body.write(xva.subarray(0, 64 * 1024))
    const ourVm = await importingVm(new Set([otherVm.$ref]))
    await new Promise(resolve => setImmediate(resolve)) // the watch reads the same cache event
    const seen = watch.seen()
    assert.equal(seen, ourVm.$ref, 'the watch sees the VM of its own import')
    body.end(xva.subarray(64 * 1024))
    ours = await imported
    assert.equal(seen, ours, 'the watch saw its own import\'s VM')
  } finally {
    watch.stop()
    held.destroy()
    await discardImport(conn, otherVm.$ref)
    if (ours !== undefined) await discardImport(conn, ours)
  }
  await conn.sync()
  assert.equal(conn.byRef(otherVm.$ref), undefined)
})
