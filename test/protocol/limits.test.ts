// The socket's limits against a real daemon process: an over-long or over-deep request is answered with its
// id and a code, the client refuses to send what the daemon would skip (and never waits for it), and the
// bytes held for unfinished lines and the number of connections are bounded across all connections.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DaemonClient } from '../../source/client/index.ts'
import { MAX_LINE_BYTES, RPC_ERRORS } from '../../source/protocol/jsonrpc.ts'
import { MAX_BUFFERED_BYTES, MAX_CONNECTIONS } from '../../source/daemon/server.ts'
import { tempDir } from '../helpers/tools.ts'
import { cli, startDaemon, waitUntil, type DaemonProcess } from '../daemon/helpers.ts'

let dir: { path: string; cleanup: () => Promise<void> }
let daemon: DaemonProcess

before(async () => {
  dir = await tempDir('lifeboat-limits-')
  daemon = await startDaemon(dir.path)
})

after(async () => {
  daemon.child.kill('SIGTERM')
  await daemon.exited
  await dir.cleanup()
})

type Answer = { id: unknown; error?: { code: number; message: string; data?: { code?: string } }; result?: unknown }

/** A raw connection and the answers it got; `closed` once the daemon ends it. */
function raw(): Promise<{ socket: Socket; answers: Answer[]; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(daemon.socket)
    const answers: Answer[] = []
    let pending = ''
    socket.on('data', data => {
      pending += data.toString('utf8')
      for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n')) {
        answers.push(JSON.parse(pending.slice(0, nl)))
        pending = pending.slice(nl + 1)
      }
    })
    const closed = new Promise<void>(done => socket.on('close', () => done()))
    socket.on('error', () => {})
    socket.once('connect', () => resolve({ socket, answers, closed }))
    socket.once('error', reject)
  })
}

async function stillServes(): Promise<void> {
  const client = await DaemonClient.connect(daemon.socket)
  try {
    assert.equal((await client.call('daemon.info')).pid, daemon.child.pid)
  } finally {
    client.close()
  }
}

test('an over-long request is answered with its own id and REQUEST_TOO_LARGE; the connection goes on', async () => {
  const { socket, answers } = await raw()
  socket.write('{"jsonrpc":"2.0","id":41,"method":"daemon.info","params":"' + 'x'.repeat(MAX_LINE_BYTES + 10) + '"}\n')
  socket.write('{"jsonrpc":"2.0","id":42,"method":"daemon.info"}\n')
  await waitUntil('both answers', async () => (answers.length >= 2 ? true : undefined))
  assert.equal(answers[0]!.id, 41)
  assert.equal(answers[0]!.error?.code, RPC_ERRORS.INVALID_REQUEST)
  assert.equal(answers[0]!.error?.data?.code, 'REQUEST_TOO_LARGE')
  assert.equal(answers[1]!.id, 42)
  socket.destroy()
})

test('the client refuses a request the daemon would skip, at once, and the CLI exits with its code', async () => {
  const client = await DaemonClient.connect(daemon.socket)
  try {
    await assert.rejects(client.call('job.create', { job: { name: 'x'.repeat(MAX_LINE_BYTES) } as never }), { code: 'REQUEST_TOO_LARGE' })
    assert.equal((await client.call('daemon.info')).pid, daemon.child.pid, 'the connection is still good')
  } finally {
    client.close()
  }
  const file = join(dir.path, 'huge.json')
  await writeFile(file, JSON.stringify({ name: 'huge', mode: 'full', vms: { uuids: Array.from({ length: 200_000 }, (_, i) => `vm-${i}-${'u'.repeat(20)}`) }, schedules: [] }))
  const result = await cli(daemon.socket, ['job', 'create', '--file', file])
  assert.equal(result.code, 1)
  assert.match(result.stderr, /^lifeboat: REQUEST_TOO_LARGE: /)
})

test('a 200 000-deep document is refused with REQUEST_TOO_DEEP and its id, not a stack overflow', async () => {
  const { socket, answers } = await raw()
  const deep = '['.repeat(200_000) + ']'.repeat(200_000)
  socket.write(`{"jsonrpc":"2.0","id":7,"method":"job.create","params":{"job":${deep}}}\n`)
  await waitUntil('the answer', async () => (answers.length >= 1 ? true : undefined))
  assert.equal(answers[0]!.id, 7)
  assert.equal(answers[0]!.error?.data?.code, 'REQUEST_TOO_DEEP')
  assert.match(answers[0]!.error!.message, /deeper than 64 levels/)
  socket.destroy()
  await stillServes()
})

test('unfinished lines are bounded across connections: the ones over the budget are refused with their id', async () => {
  const lineBytes = 3 * 1024 * 1024
  const count = Math.ceil(MAX_BUFFERED_BYTES / lineBytes) + 8
  const connections = await Promise.all(Array.from({ length: count }, () => raw()))
  connections.forEach(({ socket }, index) => socket.write(`{"jsonrpc":"2.0","id":${index},"method":"daemon.info","params":"${'x'.repeat(lineBytes)}`))
  const refused = () => connections.filter(c => c.answers.some(a => a.error?.data?.code === 'DAEMON_BUSY'))
  const held = Math.floor(MAX_BUFFERED_BYTES / lineBytes)
  await waitUntil('the refusals', async () => (refused().length >= count - held ? true : undefined))
  for (const connection of refused()) assert.equal(connection.answers[0]!.id, connections.indexOf(connection), 'the refusal names the request')
  // The lines held are answered when they end; the refused ones are skipped to their newline.
  for (const { socket } of connections) socket.write('"}\n')
  await waitUntil('an answer on every connection', async () => (connections.every(c => c.answers.length >= 1) ? true : undefined))
  assert.equal(connections.filter(c => c.answers[0]!.error?.code === RPC_ERRORS.INVALID_PARAMS).length, count - refused().length)
  for (const { socket } of connections) socket.destroy()
  await stillServes()
  // Once they are closed, their bytes are given back: a new long line is read whole.
  const { socket, answers } = await raw()
  socket.write(`{"jsonrpc":"2.0","id":1,"method":"daemon.info","params":"${'x'.repeat(lineBytes)}"}\n`)
  await waitUntil('the answer', async () => (answers.length >= 1 ? true : undefined))
  assert.equal(answers[0]!.error?.code, RPC_ERRORS.INVALID_PARAMS)
  socket.destroy()
})

test('connections beyond the limit are told DAEMON_BUSY and closed; the daemon serves again once they go', async () => {
  const connections = await Promise.all(Array.from({ length: MAX_CONNECTIONS + 10 }, () => raw()))
  await waitUntil('the refusals', async () => (connections.filter(c => c.answers.length > 0).length >= 10 ? true : undefined))
  const busy = connections.filter(c => c.answers[0]?.error?.data?.code === 'DAEMON_BUSY')
  assert.ok(busy.length >= 10, `${busy.length} refused`)
  await Promise.all(busy.map(c => c.closed))
  for (const { socket } of connections) socket.destroy()
  await waitUntil('the daemon to serve again', async () => {
    try {
      await stillServes()
      return true
    } catch {
      return undefined
    }
  })
})
