// A real daemon process on a temporary data directory, and the CLI run as a real process against it.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DaemonClient } from '../../source/client/index.ts'

export const LIFEBOAT = fileURLToPath(new URL('../../bin/lifeboat.js', import.meta.url))

export interface DaemonProcess {
  child: ChildProcess
  socket: string
  /** What the daemon wrote on stderr (its log). */
  log(): string
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>
}

export async function startDaemon(dataDir: string, socket = join(dataDir, 'lifeboat.sock')): Promise<DaemonProcess> {
  const child = spawn(process.execPath, [LIFEBOAT, 'daemon', '--data', dataDir, '--socket', socket], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr!.on('data', (data: Buffer) => (log += data.toString()))
  const exited = new Promise<number | string>(resolve => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)))
  // Generous: on a loaded machine (CI, parallel helpers) a daemon can take tens of seconds to listen.
  const deadline = Date.now() + 90_000
  for (;;) {
    try {
      const client = await DaemonClient.connect(socket)
      client.close()
      break
    } catch (error) {
      if (child.exitCode !== null || Date.now() > deadline) {
        // A daemon left running would keep the test process alive after the failure.
        child.kill('SIGKILL')
        throw new Error(`the daemon did not start: ${log}`, { cause: error })
      }
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }
  return { child, socket, log: () => log, exited }
}

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/** `input`, when given, is the command's standard input (else it has none). */
export function cli(socket: string, args: string[], env: Record<string, string> = {}, input?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [LIFEBOAT, ...args, '--socket', socket], { env: { ...process.env, ...env }, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    child.stdin?.end(input)
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', code => resolve({ code: code ?? -1, stdout, stderr }))
  })
}

/** Runs the CLI with --json and parses its one document; fails with its stderr otherwise. */
export async function cliJson<T = any>(socket: string, args: string[], env: Record<string, string> = {}, input?: string): Promise<T> {
  const result = await cli(socket, [...args, '--json'], env, input)
  if (result.code !== 0) throw new Error(`lifeboat ${args.join(' ')} exited ${result.code}: ${result.stderr}`)
  return JSON.parse(result.stdout) as T
}

export async function waitUntil<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

/**
 * What most CLI tests start from: the lab's first pool added through the CLI (its password in a 0600 file) and a
 * local remote named `local` in `<dir>/remote`; returns the pool's VMs, uuid by name.
 */
export async function addLabPoolAndRemote(socket: string, lab: { pools: Array<{ url: string; username: string; password: string }> }, dir: string): Promise<Record<string, string>> {
  const pool = lab.pools[0]!
  const passwordFile = join(dir, 'password')
  await writeFile(passwordFile, pool.password, { mode: 0o600 })
  await cliJson(socket, ['pool', 'add', pool.url, '--user', pool.username, '--password-file', passwordFile])
  await mkdir(join(dir, 'remote'), { recursive: true })
  await cliJson(socket, ['remote', 'add', 'local', `file://${join(dir, 'remote')}`])
  const vms: Record<string, string> = {}
  for (const vm of await cliJson<Array<{ name: string; uuid: string }>>(socket, ['vm', 'list'])) vms[vm.name] = vm.uuid
  return vms
}
