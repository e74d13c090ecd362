import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { connectTui, type ConnectionState } from '../../source/tui/client.ts'
import { tempDir } from '../helpers/tools.ts'

const lifeboat = fileURLToPath(new URL('../../bin/lifeboat.js', import.meta.url))

function startDaemon(dataDir: string, socket: string): ChildProcess {
  return spawn(process.execPath, [lifeboat, 'daemon', '--data', dataDir, '--socket', socket], { stdio: 'ignore' })
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise(resolve => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
}

test('connectTui: down while no daemon answers, connected when it starts, down and back again across a restart', { timeout: 60_000 }, async () => {
  const dir = await tempDir('lifeboat-tui-client-')
  const socket = join(dir.path, 'lifeboat.sock')
  const client = connectTui(socket, { retryMs: 100 })
  const states: ConnectionState['status'][] = []
  const reached = (status: ConnectionState['status']) =>
    new Promise<void>(resolve => {
      if (client.connection.status === status) return resolve()
      const off = client.onConnection(state => state.status === status && (off(), resolve()))
    })
  client.onConnection(state => states.push(state.status))
  let daemon: ChildProcess | undefined
  try {
    await reached('down')
    assert.match((client.connection as { reason: string }).reason, /No Lifeboat daemon answers/)
    daemon = startDaemon(dir.path, socket)
    await reached('connected')
    assert.deepEqual(await client.call('job.list', {}), [])
    await client.call('subscribe', { topics: ['state'] })

    await stop(daemon)
    await reached('down')
    await assert.rejects(client.call('job.list', {}))
    daemon = startDaemon(dir.path, socket)
    await reached('connected')
    assert.deepEqual(await client.call('job.list', {}), [])
    assert.deepEqual(states.filter((s, i) => s !== states[i - 1]), ['down', 'connected', 'down', 'connected'])
  } finally {
    client.close()
    if (daemon !== undefined) await stop(daemon)
    await dir.cleanup()
  }
})
