// `lifeboat lab`: the lab's pools, a daemon configured with them and the local remote "lab", ready for the CLI;
// started twice on the same data (new ports: the pools are updated), stopped by Ctrl-C.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { tempDir } from '../helpers/tools.ts'
import { LIFEBOAT, cliJson } from './helpers.ts'

async function startLabCommand(dataDir: string) {
  const child = spawn(process.execPath, [LIFEBOAT, 'lab', '--data', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  const deadline = Date.now() + 30_000
  while (!stdout.includes('Ctrl-C stops')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`lifeboat lab did not start: ${stdout}${stderr}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  return { child, exited, stdout: () => stdout }
}

test('lifeboat lab: pools connected, remote "lab", how to go on; Ctrl-C stops it; a second start reuses the state', async () => {
  const dir = await tempDir('lifeboat-lab-command-')
  const socket = join(dir.path, 'lifeboat.sock')
  try {
    for (let start = 0; start < 2; start++) {
      const lab = await startLabCommand(dir.path)
      assert.match(lab.stdout(), /lifeboat job run first --wait/)
      const pools = await cliJson(socket, ['pool', 'list'])
      assert.equal(pools.length, 2)
      assert.ok(pools.every((pool: { status: string }) => pool.status === 'connected'), JSON.stringify(pools))
      const remotes = await cliJson(socket, ['remote', 'list'])
      assert.deepEqual(remotes.map((r: { name: string }) => r.name), ['lab'])
      assert.ok((await cliJson(socket, ['vm', 'list'])).length > 5, 'the lab pool lists more than 5 VMs')
      lab.child.kill('SIGINT')
      assert.equal(await lab.exited, 0)
    }
  } finally {
    await dir.cleanup()
  }
})
