// The daemon's socket protocol against a real daemon process: line framing (lines cut anywhere, several per write),
// the JSON-RPC envelope and each method's params. Every request gets exactly one answer, a result or a coded error,
// the daemon never dies, and a proper client still works afterwards.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import fc from 'fast-check'
import { z } from 'zod'
import { DaemonClient } from '../../source/client/index.ts'
import { LineSplitter, MAX_LINE_BYTES, RPC_ERRORS, requestSchema } from '../../source/protocol/jsonrpc.ts'
import { methodParams } from '../../source/protocol/methods.ts'
import { LifeboatError } from '../../source/util/errors.ts'
import { tempDir } from '../helpers/tools.ts'
import { startDaemon, type DaemonProcess } from '../daemon/helpers.ts'
import { assertReached, fuzz } from './harness.ts'

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

/** A raw connection that collects the responses it gets (notifications left out), each parsed from its line. */
function rawConnection(): Promise<{ socket: Socket; responses: Response[] }> {
  return new Promise((resolve, reject) => {
    const socket = connect(daemon.socket)
    const responses: Response[] = []
    const splitter = new LineSplitter(line => {
      const message = JSON.parse(line)
      if (message.method === undefined) responses.push(message)
    }, () => reject(new Error('the daemon sent an over-long line')))
    socket.on('data', data => splitter.push(data))
    socket.once('connect', () => resolve({ socket, responses }))
    socket.once('error', reject)
  })
}

/** How many answers a line must get: none for a blank line or a well-formed notification (no id), else one. */
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

/** An answer is a result or an error with a code and a message; an application error must carry a Lifeboat code. */
function checkAnswer(response: Response): void {
  if ('result' in response) return
  const error = response.error
  if (error === undefined || typeof error.code !== 'number' || typeof error.message !== 'string' || error.message === '') {
    throw new Error(`not a JSON-RPC answer: ${JSON.stringify(response).slice(0, 300)}`)
  }
  // An error without a Lifeboat code is a crash in a handler (TypeError, stack overflow…), not an answer.
  if (error.code === RPC_ERRORS.APPLICATION_ERROR && (error.data?.code === undefined || error.data.code === 'UNKNOWN')) {
    throw new Error(`a handler crashed: ${error.message}`)
  }
}

// Methods whose side effects reach outside the daemon (connections, probes, files, runs) only get params that can never be valid.
const OUTSIDE = ['pool.add', 'remote.add', 'remote.test', 'proxy.add', 'job.run', 'job.crSeed', 'restore.start', 'backup.check', 'job.create', 'job.update']
const HARMLESS = Object.keys(methodParams).filter(method => !OUTSIDE.includes(method))
const ALL = Object.keys(methodParams)

/** The field names a method's params schema knows (an optional object unwrapped). */
function paramKeys(schema: z.ZodType): string[] {
  const inner = schema instanceof z.ZodOptional ? schema.unwrap() : schema
  return inner instanceof z.ZodObject ? Object.keys(inner.shape) : []
}

const oneLine = (line: string) => line.replace(/[\r\n]/g, ' ')

const garbage = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.stringMatching(/^[{}[\]",:0-9a-z\s]{0,80}$/),
  fc.json(),
  fc.uint8Array({ maxLength: 100 }).map(bytes => Buffer.from(bytes).toString('latin1')),
  fc.constantFrom('[]', '[{"jsonrpc":"2.0","id":1,"method":"daemon.info"}]', 'null', '{"jsonrpc":"2.0","id":7,"method":"constructor"}',
    '{"jsonrpc":"2.0","id":8,"method":"__proto__","params":{}}', '{"jsonrpc":"2.0","id":9,"method":"run.get","params":{"runId":"../../etc/passwd"}}'),
).map(oneLine)

const envelope = fc.record({
  jsonrpc: fc.oneof(fc.constant('2.0'), fc.constant('1.0'), fc.integer()),
  id: fc.oneof(fc.integer(), fc.string({ maxLength: 20 }), fc.constant(null), fc.double(), fc.string({ minLength: 201, maxLength: 260 })),
  method: fc.oneof(fc.constantFrom(...HARMLESS), fc.string({ maxLength: 30 })),
  params: fc.oneof(fc.anything(), fc.record({ id: fc.string(), runId: fc.string(), name: fc.string(), topics: fc.array(fc.string()) }, { requiredKeys: [] })),
}, { requiredKeys: ['method'] }).map(request => JSON.stringify(request))

/** Params of the right shape for the method, with values right or wrong. */
const shapedParams = fc.constantFrom(...HARMLESS).chain(method => {
  const keys = paramKeys(methodParams[method as keyof typeof methodParams] as z.ZodType)
  const value = fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('', 'nope', 'tasks', 'lanes', '../x', 'a'.repeat(300)), fc.integer(), fc.boolean(),
    fc.array(fc.constantFrom('tasks', 'lanes', 'state', 'other'), { maxLength: 12 }), fc.anything())
  const params = keys.length === 0 ? fc.oneof(fc.constant(undefined), fc.object()) : fc.dictionary(fc.constantFrom(...keys, 'extra'), value, { maxKeys: keys.length + 1 })
  return fc.record({ id: fc.integer(), params }).map(({ id, params }) => JSON.stringify({ jsonrpc: '2.0', id, method, params }))
})

const badParams = fc.record({
  jsonrpc: fc.constant('2.0'),
  id: fc.integer(),
  method: fc.constantFrom(...ALL),
  params: fc.oneof(fc.integer(), fc.constant([]), fc.constant('x'), fc.record({ unknownField: fc.anything() })),
}).map(request => JSON.stringify(request))

const line = fc.oneof(garbage, envelope, shapedParams, badParams, fc.constant(''))

/** A few lines sent as one byte stream cut at arbitrary places. */
const exchange = fc.record({ lines: fc.array(line, { minLength: 1, maxLength: 4 }), cuts: fc.array(fc.nat(), { maxLength: 4 }) })

test('line framing: lines cut anywhere and glued together come out whole, blank ones dropped', async () => {
  await fuzz('line framing', fc.record({ lines: fc.array(fc.string({ maxLength: 40 }).map(oneLine), { maxLength: 8 }), cuts: fc.array(fc.nat(), { maxLength: 8 }) }),
    async ({ lines, cuts }) => {
      const seen: string[] = []
      const splitter = new LineSplitter(text => seen.push(text), () => assert.fail('no line here is over-long'))
      const bytes = Buffer.from(lines.map(text => `${text}\n`).join(''))
      const points = [...new Set(cuts.map(cut => cut % (bytes.length + 1)))].sort((a, b) => a - b)
      let start = 0
      for (const point of [...points, bytes.length]) {
        splitter.push(bytes.subarray(start, point))
        start = point
      }
      assert.deepEqual(seen, lines.filter(text => text.trim() !== ''))
    }, 2000)
})

test('fuzz: every malformed or random request gets one answer, a result or a coded error', async () => {
  const { socket, responses } = await rawConnection()
  let sentinel = 0
  try {
    const outcomes = await fuzz('socket protocol', exchange, async ({ lines, cuts }) => {
      responses.length = 0
      const expected = lines.reduce((sum, text) => sum + answersExpected(text), 0)
      const id = `sentinel-${++sentinel}`
      const bytes = Buffer.from(lines.map(text => `${text}\n`).join(''))
      const points = [...new Set(cuts.map(cut => cut % (bytes.length + 1)))].sort((a, b) => a - b)
      let start = 0
      for (const point of [...points, bytes.length]) {
        socket.write(bytes.subarray(start, point))
        start = point
      }
      socket.write(`${JSON.stringify({ jsonrpc: '2.0', id, method: 'daemon.info' })}\n`)
      // Answers may come in any order: wait for the sentinel's and for as many as the lines asked for.
      while (!(responses.some(response => response.id === id) && responses.length >= expected + 1)) {
        if (socket.destroyed || daemon.child.exitCode !== null) throw new Error(`the daemon went away: ${daemon.log().slice(-2000)}`)
        await new Promise(resolve => setTimeout(resolve, 1))
      }
      const answers = responses.filter(response => response.id !== id)
      assert.equal(answers.length, expected, 'one answer per request')
      for (const answer of answers) checkAnswer(answer)
      const codes = answers.map(answer => answer.error?.data?.code ?? answer.error?.code)
      // Every input here is refused or answered: the harness records the first code as the case's outcome.
      if (codes.some(code => code !== undefined)) throw new LifeboatError(String(codes.find(code => code !== undefined)), 'answered with an error')
    }, 3000)
    assertReached(outcomes, ['ok', String(RPC_ERRORS.PARSE_ERROR), String(RPC_ERRORS.INVALID_REQUEST), String(RPC_ERRORS.METHOD_NOT_FOUND), String(RPC_ERRORS.INVALID_PARAMS)])
  } finally {
    socket.destroy()
  }
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
  assert.ok(responses[1]?.result, 'the valid request after the invalid one gets a result')
  socket.destroy()
})

/** A JSON value nested `depth` deep, as a hostile or broken job file can be. */
function deepJson(depth: number): { text: string; value: unknown } {
  const text = '{"a":['.repeat(depth / 2) + ']}'.repeat(depth / 2)
  return { text, value: JSON.parse(text) }
}

test('a 200 000-deep JSON document is refused with a coded error by the daemon and by the client', async () => {
  const deep = deepJson(200_000)
  const { socket, responses } = await rawConnection()
  socket.write(`{"jsonrpc":"2.0","id":1,"method":"job.create","params":{"job":${deep.text}}}\n`)
  socket.write(`{"jsonrpc":"2.0","id":2,"method":"run.get","params":${deep.text}}\n`)
  socket.write(`${deep.text}\n`)
  const deadline = Date.now() + 10_000
  while (responses.length < 3 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
  assert.equal(responses.length, 3)
  for (const response of responses) checkAnswer(response)
  socket.destroy()
  const client = await DaemonClient.connect(daemon.socket)
  try {
    await assert.rejects(client.call('job.create', { job: deep.value as never }),
      (error: unknown) => error instanceof LifeboatError && error.code !== 'UNKNOWN')
  } finally {
    client.close()
  }
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
