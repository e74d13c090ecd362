// The proxy service as a real process with its own data folder, the authorized_keys line that lets a daemon's
// key run its bridge over ssh, and a second installation of Lifeboat with another version (to be refused).
import { spawn, type ChildProcess } from 'node:child_process'
import { connect } from 'node:net'
import { cp, mkdir, readFile, realpath, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export interface ProxyProcess {
  child: ChildProcess
  dataDir: string
  socket: string
  log(): string
  /** SIGTERM, then the exit code (or the signal's name). */
  stop(): Promise<number | string>
}

/** `lifeboat proxy --data DIR` of an installation (this checkout unless `root` names another). */
export async function startProxy(dataDir: string, root = ROOT): Promise<ProxyProcess> {
  const child = spawn(process.execPath, [join(root, 'bin/lifeboat.js'), 'proxy', '--data', dataDir], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr!.on('data', (data: Buffer) => (log += data.toString()))
  const exited = new Promise<number | string>(resolve => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)))
  const socket = join(dataDir, 'proxy.sock')
  const deadline = Date.now() + 90_000
  while (!(await answers(socket))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`the proxy service did not start: ${log}`)
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  return {
    child, dataDir, socket, log: () => log,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      return exited
    },
  }
}

function answers(socket: string): Promise<boolean> {
  return new Promise(resolve => {
    const probe = connect(socket)
    probe.once('connect', () => (probe.destroy(), resolve(true)))
    probe.once('error', () => resolve(false))
  })
}

/** The authorized_keys line that lets `publicKey` run this installation's bridge to the proxy of `dataDir`, and nothing else. */
export function bridgeKeyLine(publicKey: string, dataDir: string, root = ROOT): string {
  return `restrict,command="${process.execPath} ${join(root, 'bin/lifeboat.js')} proxy --stdio --data ${dataDir}" ${publicKey}`
}

/** A copy of this installation (its code, the same node_modules) whose package.json says `version`. */
export async function otherInstall(dir: string, version: string): Promise<string> {
  await mkdir(dir, { recursive: true })
  for (const part of ['cli.tsx', 'bin', 'source', 'tsconfig.json']) await cp(join(ROOT, part), join(dir, part), { recursive: true })
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }
  await writeFile(join(dir, 'package.json'), JSON.stringify({ ...pkg, version }, null, 2))
  await symlink(await realpath(join(ROOT, 'node_modules')), join(dir, 'node_modules'))
  return dir
}
