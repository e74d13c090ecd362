// A lock left by a process that died (kill -9 of the daemon) is taken over at once on the same host,
// while a lock of a live process is still refused: a restarted daemon does not wait for its own debris.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { cp, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { LocalHandler } from '../../source/storage/index.ts'
import { tempDir } from '../helpers/tools.ts'

const holderScript = (root: string) => `
  import { LocalHandler } from './source/storage/index.ts'
  const handler = new LocalHandler(${JSON.stringify(root)})
  await handler.sync()
  await handler.lock('xo-vm-backups/vm1')
  process.stdout.write('locked\\n')
  setInterval(() => {}, 1000)
`

async function startHolder(root: string) {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', holderScript(root)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer]
  assert.equal(chunk.toString().trim(), 'locked')
  return child
}

test('a lock held by a live process is refused, one left by a killed process is taken over at once', async () => {
  const dir = await tempDir()
  try {
    const handler = new LocalHandler(dir.path)
    await handler.sync()
    const child = await startHolder(dir.path)
    await assert.rejects(handler.lock('xo-vm-backups/vm1'), { code: 'REMOTE_LOCKED' })
    child.kill('SIGKILL')
    await once(child, 'exit')
    const lock = await handler.lock('xo-vm-backups/vm1')
    assert.equal(lock.compromised, false)
    await lock.release()
    const again = await handler.lock('xo-vm-backups/vm1')
    await again.release()
  } finally {
    await dir.cleanup()
  }
})

test("a lock of this very process that its release could not remove (the remote was gone) is taken over at once; one it still holds is refused", async () => {
  const dir = await tempDir()
  try {
    const handler = new LocalHandler(dir.path)
    await handler.sync()
    const held = await handler.lock('xo-vm-backups/vm1')
    await assert.rejects(handler.lock('xo-vm-backups/vm1'), { code: 'REMOTE_LOCKED' }, 'held by this process: refused')
    // What a release leaves when the share is gone at that moment: the folder, still naming this process.
    const lockDir = join(dir.path, 'xo-vm-backups/vm1.lock')
    await cp(lockDir, `${lockDir}.kept`, { recursive: true })
    await held.release()
    await rename(`${lockDir}.kept`, lockDir)
    const next = await handler.lock('xo-vm-backups/vm1', { staleMs: 60_000 })
    assert.equal(next.compromised, false, 'the next run takes it without waiting a minute for it to go stale')
    await next.release()
  } finally {
    await dir.cleanup()
  }
})
