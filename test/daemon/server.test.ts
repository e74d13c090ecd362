// The socket server's promise to the runs: a client that stops reading never makes the daemon buffer
// without bound or wait; it is skipped, then told to resync once it reads again.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { connect } from 'node:net'
import { once } from 'node:events'
import { DaemonClient } from '../../source/client/index.ts'
import { CLIENT_QUEUE_BYTES, RpcServer } from '../../source/daemon/server.ts'
import type { MethodHandler } from '../../source/daemon/server.ts'
import { methodParams, type MethodName } from '../../source/protocol/methods.ts'
import { tempDir } from '../helpers/tools.ts'

function server(socketPath: string): RpcServer<MethodName> {
  const handlers = {
    'daemon.info': () => ({ pid: process.pid }),
    subscribe: ((params: { topics: Array<'tasks' | 'lanes' | 'state'> }, client) => {
      for (const topic of params.topics) client.topics.add(topic)
      return { subscribed: [...client.topics] }
    }) as MethodHandler,
  } as unknown as Record<MethodName, MethodHandler>
  return new RpcServer({ socketPath, methods: methodParams, handlers })
}

test('a client that stops reading is skipped (bounded), then gets resync; a reading client gets everything', async () => {
  const dir = await tempDir()
  const socketPath = join(dir.path, 's.sock')
  const rpc = server(socketPath)
  await rpc.listen()
  const reader = await DaemonClient.connect(socketPath)
  // The stalled client is a raw socket, so the test controls exactly when it reads.
  const stalled = connect(socketPath)
  await once(stalled, 'connect')
  try {
    await reader.subscribe(['state'])
    let received = 0
    reader.onNotification('state.changed', () => received++)
    stalled.write('{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"topics":["state"]}}\n')
    await once(stalled, 'data')
    stalled.pause()
    const total = 20_000
    for (let i = 0; i < total; i++) {
      rpc.broadcast('state.changed', { kind: 'jobs' }, client => client.topics.has('state'))
      if (i % 500 === 0) await new Promise(resolve => setImmediate(resolve))
    }
    for (const client of rpc.clients) assert.ok(client.socket.writableLength <= CLIENT_QUEUE_BYTES + 1024, 'the queue of every client stays bounded')
    assert.ok([...rpc.clients].some(client => client.socket.writableLength > 0), 'the stalled client really stalled')
    const deadline = Date.now() + 10_000
    while (received < total && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
    assert.equal(received, total, 'the reading client got every notification')

    let text = ''
    stalled.on('data', (data: Buffer) => (text += data.toString()))
    stalled.resume()
    while (!text.includes('"resync"') && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
    const lines = text.split('\n').filter(Boolean).map(line => JSON.parse(line))
    assert.equal(lines.filter(line => line.method === 'resync').length, 1, 'the stalled client is told to resync once')
    assert.ok(lines.filter(line => line.method === 'state.changed').length < total, 'notifications were dropped for the stalled client')
    stalled.write('{"jsonrpc":"2.0","id":2,"method":"daemon.info"}\n')
    while (!text.includes('"id":2') && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
    assert.match(text, /"id":2,"result"/, 'the stalled client still gets answers')
  } finally {
    reader.close()
    stalled.destroy()
    await rpc.close()
    await dir.cleanup()
  }
})
