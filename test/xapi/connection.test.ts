// A pool connection against the lab over real HTTP with the real xen-api client: every wait on the pool ends,
// with a coded error, whatever the toolstack does (restarts, a stuck event feed, a host that never answers), and
// a session the pool dropped is logged in again for HTTP transfers as for calls.
import assert from 'node:assert/strict'
import { after, before, beforeEach, describe, test } from 'node:test'
import { Readable } from 'node:stream'
import { startLab, type Lab } from '../../source/lab/index.ts'
import { errorCode } from '../../source/util/errors.ts'
import { exportVdiVhd, importVdiVhd, PoolConnection, vmDisks, type XapiRecord } from '../../source/xapi/index.ts'
import { getExport } from '../../source/xapi/http-get.ts'
import { tempDir } from '../helpers/tools.ts'

/** The outcome of a promise, or 'still waiting' once `ms` have passed: a wait that never ends fails the test instead of hanging it. */
async function outcome(promise: Promise<unknown>, ms: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<string>(resolve => (timer = setTimeout(() => resolve('still waiting'), ms)))
  try {
    return await Promise.race([promise.then(() => 'resolved', (error: unknown) => errorCode(error) ?? String(error)), late])
  } finally {
    clearTimeout(timer)
  }
}

async function eventually(check: () => void, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return check()
    } catch (error) {
      if (Date.now() > deadline) throw error
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

describe('a pool connection whatever the toolstack does', () => {
  let lab: Lab
  let dir: Awaited<ReturnType<typeof tempDir>>
  let conn: PoolConnection
  let vm: XapiRecord
  const holder = { runId: 'r', vm: 'v', phase: 'export' }
  const connect = (options: { stallTimeoutMs?: number } = {}) => {
    const pool = lab.pools[0]!
    return PoolConnection.connect({ url: pool.url, username: pool.username, password: pool.password }, options)
  }
  before(async () => {
    dir = await tempDir('lifeboat-xapi-conn-')
    lab = await startLab({ dataDir: dir.path, fixture: 'tiny' })
    conn = await connect()
    vm = conn.all('VM').find(v => v.name_label === 'tiny-running')!
  })
  after(async () => {
    await conn.disconnect()
    await lab.stop()
    await dir.cleanup()
  })
  beforeEach(() => {
    lab.control.xapi.faults.clear()
    lab.control.setKnobs({ snapshotMs: 0, attachMs: 0 })
  })

  /** The event feed stops delivering: the poll in flight, if any, returns on a change; the next one hangs in the toolstack. */
  const freezeEventFeed = async () => {
    const hangs = () => lab.control.faultLog().filter(entry => entry.fault === 'hang' && entry.detail.method === 'event.from').length
    const before = hangs()
    lab.control.addFault({ match: { method: 'event.from' }, action: { type: 'hang' } })
    await conn.call('pool.set_name_description', conn.pool.$ref, `event feed frozen ${before}`)
    await eventually(() => assert.ok(hangs() > before, 'the next event poll reached the toolstack'))
  }

  test('an async call whose task the toolstack forgets before the client saw it fails with XAPI_TASK_GONE', async () => {
    await freezeEventFeed()
    lab.control.setKnobs({ snapshotMs: 10_000 })
    const snapshot = conn.callAsyncSettled(undefined, 'VM.snapshot', vm.$ref, 'forgotten', [])
    await eventually(() => assert.ok(lab.control.xapi.db.count('task') > 0, 'the snapshot task exists'))
    await lab.control.restart(500)
    assert.equal(await outcome(snapshot, 90_000), 'XAPI_TASK_GONE')
    await conn.sync()
  })

  test('a cache sync while the event feed is stuck fails with XAPI_EVENTS_STALLED at its bound', async () => {
    await freezeEventFeed()
    try {
      assert.equal(await outcome(conn.sync(undefined, 1000), 60_000), 'XAPI_EVENTS_STALLED')
    } finally {
      // The stuck poll is cut, as a toolstack restart cuts it, and the feed goes on.
      await lab.control.restart(200)
      await eventually(() => assert.ok(lab.control.xapi.sessions.size > 0, 'the client logged in again'), 30_000)
    }
    await conn.sync()
  })

  test('a new login that fails (the toolstack still starting) leaves no dead session: the next call logs in', async () => {
    lab.control.addFault({ match: { method: 'session.login_with_password' }, action: { type: 'error', code: 'HOST_STILL_BOOTING' } })
    lab.control.invalidateSessions()
    assert.equal(await outcome(conn.call('pool.get_all'), 30_000), 'XAPI_HOST_STILL_BOOTING')
    assert.equal(await outcome(conn.call('pool.get_all'), 30_000), 'resolved')
    await conn.sync()
  })

  test('an export whose host never sends its status line is given up with XAPI_EXPORT_STALLED', async () => {
    const impatient = await connect({ stallTimeoutMs: 1000 })
    try {
      lab.control.setKnobs({ attachMs: 60_000 })
      const disk = vmDisks(impatient, impatient.get('VM', vm.uuid))[0]!.vdi
      assert.equal(await outcome(exportVdiVhd(impatient, disk.$ref, { holder }), 30_000), 'XAPI_EXPORT_STALLED')
    } finally {
      lab.control.setKnobs({ attachMs: 0 })
      await impatient.disconnect()
    }
  })
  /** The disk's bytes as the pool serves them (raw export, its task awaited). */
  const rawBytes = async (vdiRef: string) => {
    const response = await getExport(conn, '/export_raw_vdi/', { format: 'raw', vdi: vdiRef })
    const bytes = await readAll(response.body)
    await response.task
    return bytes
  }

  /** The next transfer's task.create is answered late, and the pool drops every session meanwhile: its GET or PUT meets a 401. */
  const dropSessionAfterTaskCreate = () => {
    const delays = () => lab.control.faultLog().filter(entry => entry.fault === 'delay' && entry.detail.method === 'task.create').length
    const before = delays()
    lab.control.addFault({ match: { method: 'task.create' }, action: { type: 'delay', ms: 5000 } })
    return async () => {
      await eventually(() => assert.ok(delays() > before, 'the transfer is creating its task'))
      lab.control.invalidateSessions()
    }
  }

  for (const request of ['GET', 'PUT'] as const) {
    test(`a session the pool dropped just before the ${request === 'GET' ? 'export GET' : 'import PUT'}: logged in again, the disk lands whole`, async () => {
      const source = vmDisks(conn, conn.all('VM').find(v => v.name_label === 'tiny-halted')!)[0]!.vdi
      await lab.control.writeVdi(source.uuid, { offset: 3 * 1024 * 1024 + 512, length: 64 * 1024, seed: 7 })
      const target = (await conn.callAsync(undefined, 'VDI.clone', source.$ref, {})) as string
      await lab.control.writeVdi(source.uuid, { offset: 9 * 1024 * 1024, length: 2 * 1024 * 1024, seed: request === 'GET' ? 8 : 9 })
      const expected = await rawBytes(source.$ref)
      assert.ok(!(await rawBytes(target)).equals(expected), 'the clone misses the last write')

      const dropped = request === 'GET' ? dropSessionAfterTaskCreate() : async () => {}
      const exporting = exportVdiVhd(conn, source.$ref, { holder })
      await dropped()
      const vhdExport = await exporting
      const vhd = await readAll(vhdExport.stream)
      await vhdExport.task

      const droppedAgain = request === 'PUT' ? dropSessionAfterTaskCreate() : async () => {}
      const importing = importVdiVhd(conn, target, Readable.from([vhd]), vhd.length)
      await droppedAgain()
      await importing
      assert.ok((await rawBytes(target)).equals(expected), 'the imported disk holds the bytes of the source disk')
    })
  }
})
