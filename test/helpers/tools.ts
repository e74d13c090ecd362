// Helpers shared by the tests: temporary folders and the external programs used as oracles.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Fails (never skips) when an oracle program is missing, saying how to install it. */
export function requireTool(command: string, pkg: string): void {
  if (spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status !== 0) {
    throw new Error(`${command} is not installed; install it with: apt-get install -y ${pkg} (npm test does it when run as root)`)
  }
}

/** A fresh temporary folder, removed by the returned cleanup. */
export async function tempDir(prefix = 'lifeboat-test-'): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix))
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) }
}

/** Runs a program to completion; rejects with its stderr when it fails. */
export function run(command: string, args: string[], options: { input?: Buffer; cwd?: string } = {}): Promise<{ stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    let err = ''
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.on('error', reject)
    child.on('close', code => {
      if (code === 0) resolve({ stdout: Buffer.concat(out), stderr: err })
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${err.trim()}`))
    })
    child.stdin.end(options.input)
  })
}

/** Sends a child process a signal and waits until it has exited (at once if it already has). */
export async function endProcess(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill(signal)
  await exited
}
