// The lab's export throughput through the real xen-api client: a 1 GiB disk exported uncapped (raw and VHD), then
// the total rate of 1, 2, 4, 8, 12 parallel exports under caps (per stream and per host), next to what the caps allow.
// Run: node --import tsx test/bench/lab.ts [--per-stream 30] [--host 120] [--seconds 3]
import { rm, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createClient } from 'xen-api'
import { startLab } from '../../source/lab/index.ts'
import { fillPattern } from '../../source/lab/storage/index.ts'

const MiB = 1024 * 1024
const GiB = 1024 * MiB
const { values } = parseArgs({ options: { 'per-stream': { type: 'string', default: '30' }, host: { type: 'string', default: '120' },
  seconds: { type: 'string', default: '3' } } })
const perStream = Number(values['per-stream'])
const hostCap = Number(values.host)
const windowMs = Number(values.seconds) * 1000

const dir = await mkdtemp(join(tmpdir(), 'lifeboat-lab-bench-'))
const lab = await startLab({ dataDir: dir, fixture: 'tiny' })
const pool = lab.pools[0]!
const xapi: any = createClient({ url: pool.url, auth: { user: pool.username, password: pool.password }, watchEvents: true, eventPollDelay: 200 })
try {
  await xapi.connect()
  await xapi.objectsFetched
  const sr = Object.values(xapi.objects.all).find((object: any) => object.$type === 'SR') as any
  const disks: string[] = []
  for (let index = 0; index < 12; index++) {
    disks.push(await xapi.call('VDI.create', { SR: sr.$ref, virtual_size: GiB, name_label: `bench ${index}`, type: 'user' }))
  }
  // The first disk gets real content everywhere, so the uncapped figure measures reading and framing, not sparse zeros.
  const leaf = lab.control.xapi.db.row('VDI', disks[0]!).location as string
  process.stdout.write('filling 1 GiB of content… ')
  await fillPattern(lab.control.xapi.store, leaf, { offset: 0, length: GiB, seed: 7 })
  process.stdout.write('done\n')

  for (const format of ['raw', 'vhd']) {
    const started = performance.now()
    const response = await xapi.getResource('/export_raw_vdi/', { query: { vdi: disks[0], format } })
    let bytes = 0
    for await (const chunk of response.body) bytes += chunk.length
    await response.task
    const seconds = (performance.now() - started) / 1000
    console.log(`uncapped ${format} export of a 1 GiB disk: ${(bytes / MiB / seconds).toFixed(0)} MiB/s (${bytes} bytes in ${seconds.toFixed(2)} s)`)
  }

  lab.control.setKnobs({ exportPerStreamMiBs: perStream, exportHostMiBs: hostCap })
  console.log(`\ncaps: ${perStream} MiB/s per stream, ${hostCap} MiB/s per host; ${windowMs / 1000} s window per point`)
  console.log('streams  total MiB/s  expected  per stream  deviation')
  for (const streams of [1, 2, 4, 8, 12]) {
    const counts = new Array<number>(streams).fill(0)
    const responses = await Promise.all(disks.slice(0, streams).map(vdi => xapi.getResource('/export_raw_vdi/', { query: { vdi, format: 'raw' } })))
    // Skip the first half second: buckets start full, which is a burst, not the sustained rate.
    const warmup = performance.now() + 500
    let measureStart = 0
    const readers = responses.map(async (response: any, index: number) => {
      for await (const chunk of response.body) {
        if (performance.now() >= warmup) counts[index] += chunk.length
      }
    })
    await new Promise(resolve => setTimeout(resolve, 500))
    measureStart = performance.now()
    await new Promise(resolve => setTimeout(resolve, windowMs))
    const elapsed = (performance.now() - measureStart) / 1000
    const total = counts.reduce((sum, count) => sum + count, 0) / MiB / elapsed
    for (const response of responses) {
      response.task.catch(() => {})
      response.body.destroy()
    }
    await Promise.allSettled(readers)
    const expected = Math.min(streams * perStream, hostCap)
    console.log(`${String(streams).padStart(7)}  ${total.toFixed(1).padStart(11)}  ${String(expected).padStart(8)}  ${(total / streams).toFixed(1).padStart(10)}  ` +
      `${(((total - expected) / expected) * 100).toFixed(1).padStart(8)}%`)
    await new Promise(resolve => setTimeout(resolve, 300))
  }
} finally {
  await xapi.disconnect().catch(() => {})
  await lab.stop()
  await rm(dir, { recursive: true, force: true })
}
