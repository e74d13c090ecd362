// The daemon's signal handling: a SIGTERM that arrives while the daemon is still starting stops it cleanly once
// it has started (systemd stopping it at once must not kill it with its lock held and its state half-written).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { untilStopped, type Daemon } from '../../source/daemon/index.ts'

function fakeDaemon(): { daemon: Daemon; stops: string[] } {
  const stops: string[] = []
  const daemon = { log: () => {}, stop: async (reason: string) => void stops.push(reason) } as unknown as Daemon
  return { daemon, stops }
}

test('a SIGTERM received while the daemon starts stops it once it has started', async () => {
  const { daemon, stops } = fakeDaemon()
  let start!: (daemon: Daemon) => void
  const stopped = untilStopped(new Promise<Daemon>(resolve => (start = resolve)))
  process.emit('SIGTERM', 'SIGTERM')
  assert.deepEqual(stops, [], 'nothing to stop yet')
  start(daemon)
  await stopped
  assert.deepEqual(stops, ['the daemon was stopped (SIGTERM)'])
  assert.equal(process.listenerCount('SIGTERM'), 0, 'the handlers are removed once used')
})

test('a signal after the start stops the daemon once, and a failed start rejects and leaves no handler', async () => {
  const { daemon, stops } = fakeDaemon()
  const stopped = untilStopped(daemon)
  await new Promise(resolve => setImmediate(resolve))
  process.emit('SIGINT', 'SIGINT')
  await stopped
  assert.deepEqual(stops, ['the daemon was stopped (SIGINT)'])

  await assert.rejects(untilStopped(Promise.reject(new Error('DAEMON_ALREADY_RUNNING'))), /DAEMON_ALREADY_RUNNING/)
  assert.equal(process.listenerCount('SIGTERM') + process.listenerCount('SIGINT'), 0)
})
