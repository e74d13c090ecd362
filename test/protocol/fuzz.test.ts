// Thousands of malformed lines and random method/param combinations against a real daemon process: every
// request is answered (an error or a result), the daemon never crashes, and a proper client still works.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import fc from 'fast-check'
import { DaemonClient } from '../../source/client/index.ts'
import { MAX_LINE_BYTES, RPC_ERRORS, requestSchema } from '../../source/protocol/jsonrpc.ts'
import { methodParams } from '../../source/protocol/methods.ts'
import { tempDir } from '../helpers/tools.ts'
import { startDaemon, type DaemonProcess } from '../daemon/helpers.ts'

let dir: { path: string; cleanup: () => Promise<void> }
let daemon: DaemonProcess

before(async () => {
  dir = await tempDir('lifeboat-fuzz-')
  daemon = await startDaemon(dir.path)
})

after(async () => {
  daemon.child.kill('SIGTERM')
  await daemon.exited
  await dir.cleanup()
})

type Response = { id: unknown; error?: { code: number; message: string; data?: { code?: string } }; result?: unknown }

/** A raw connection that counts the answers it gets and checks each is a JSON-RPC response. */
function rawConnection(): Promise<{ socket: Socket; responses: Response[] }> {
  return new Promise((resolve, reject) => {
    const socket = connect(daemon.socket)
    const responses: Response[] = []
    let pending = ''
    socket.on('data', data => {
      pending += data.toString('utf8')
      let nl: number
      while ((nl = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, nl)
        pending = pending.slice(nl + 1)
        const message = JSON.parse(line)
        if (message.method === undefined) responses.push(message)
      }
    })
    socket.once('connect', () => resolve({ socket, responses }))
    socket.once('error', reject)
  })
}

/** How many answers a line must get: none for an empty line or a well-formed notification (no id), else one. */
function answersExpected(line: string): number {
  if (line.trim() === '') return 0
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return 1
  }
  const request = requestSchema.safeParse(value)
  return request.success && request.data.id === undefined ? 0 : 1
}

// Methods whose side effects reach outside the daemon (connections, probes, runs) are sent with params that can never be valid.
const HARMLESS = Object.keys(methodParams).filter(m => !['pool.add', 'remote.add', 'remote.test', 'job.run', 'restore.start', 'job.create', 'job.update'].includes(m))
const ALL = Object.keys(methodParams)

const garbage = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.stringMatching(/^[{}[\]",:0-9a-z\s]{0,80}$/),
  fc.json(),
  fc.uint8Array({ maxLength: 100 }).map(bytes => Buffer.from(bytes).toString('latin1')),
).map(line => line.replace(/[\r\n]/g, ' '))

const randomRequest = fc.record({
  jsonrpc: fc.oneof(fc.constant('2.0'), fc.constant('1.0'), fc.integer()),
  id: fc.oneof(fc.integer(), fc.string({ maxLength: 20 }), fc.constant(null), fc.double()),
  method: fc.oneof(fc.constantFrom(...HARMLESS), fc.string({ maxLength: 30 })),
  params: fc.oneof(fc.anything(), fc.record({ id: fc.string(), runId: fc.string(), name: fc.string(), topics: fc.array(fc.string()) }, { requiredKeys: [] })),
}, { requiredKeys: ['method'] })

const badParams = fc.record({
  jsonrpc: fc.constant('2.0'),
  id: fc.integer(),
  method: fc.constantFrom(...ALL),
  params: fc.oneof(fc.integer(), fc.constant([]), fc.constant('x'), fc.record({ unknownField: fc.anything() })),
})

test('every malformed or random request gets an answer and the daemon stays up', async () => {
  const { socket, responses } = await rawConnection()
  const lines = [
    ...fc.sample(garbage, 2500),
    ...fc.sample(randomRequest, 2500).map(request => JSON.stringify(request)),
    ...fc.sample(badParams, 500).map(request => JSON.stringify(request)),
    '[]',
    '[{"jsonrpc":"2.0","id":1,"method":"daemon.info"}]',
    'null',
    '{"jsonrpc":"2.0","id":7,"method":"constructor"}',
    '{"jsonrpc":"2.0","id":8,"method":"__proto__","params":{}}',
    '{"jsonrpc":"2.0","id":9,"method":"run.get","params":{"runId":"../../etc/passwd"}}',
  ]
  let expected = 0
  for (const line of lines) expected += answersExpected(line)
  // Sent in big writes so lines straddle chunks.
  for (let i = 0; i < lines.length; i += 500) socket.write(lines.slice(i, i + 500).join('\n') + '\n')
  const deadline = Date.now() + 30_000
  while (responses.length < expected && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
  assert.equal(responses.length, expected, 'one answer per request')
  for (const response of responses) {
    assert.ok('result' in response || (response.error !== undefined && typeof response.error.code === 'number' && response.error.message.length > 0))
  }
  // An error without a Lifeboat code is a crash in a handler (TypeError…), not an answer.
  const uncoded = responses.filter(r => r.error?.code === RPC_ERRORS.APPLICATION_ERROR && r.error.data?.code === 'UNKNOWN')
  assert.deepEqual(uncoded, [], 'no handler crashed')
  socket.destroy()
  assert.equal(daemon.child.exitCode, null, 'the daemon is still running')
})

test('an over-long line is refused and the connection goes on', async () => {
  const { socket, responses } = await rawConnection()
  socket.write('{"jsonrpc":"2.0","id":1,"method":"daemon.info","params":"' + 'x'.repeat(MAX_LINE_BYTES + 10) + '"}\n')
  socket.write('{"jsonrpc":"2.0","id":2,"method":"daemon.info"}\n')
  const deadline = Date.now() + 10_000
  while (responses.length < 2 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
  assert.equal(responses[0]?.error?.code, RPC_ERRORS.INVALID_REQUEST)
  assert.equal(responses[1]?.id, 2)
  assert.ok(responses[1]?.result)
  socket.destroy()
})

test('a well-formed client still works afterwards, with typed errors', async () => {
  const client = await DaemonClient.connect(daemon.socket)
  try {
    const info = await client.call('daemon.info')
    assert.equal(info.pid, daemon.child.pid)
    assert.deepEqual(await client.call('job.list'), [])
    await assert.rejects(client.call('job.get', { id: 'nope' }), { code: 'JOB_NOT_FOUND' })
    await assert.rejects(client.call('run.get', { runId: 42 } as never), { code: 'INVALID_PARAMS' })
  } finally {
    client.close()
  }
})
