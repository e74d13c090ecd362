// What the Samba and ganesha test servers share: a scratch folder, free loopback ports, the exported folder
// (on a private tmpfs of a given size when the test fills it up) and servers killed by their process group.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, openSync } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import { createServer, connect } from 'node:net'
import type { ShareServer } from './share-server.ts'
import { requireTool } from './tools.ts'

/** Both servers switch users and bind their ports as root; so do the tmpfs and the share user. */
export function requireRoot(server: string): void {
  if (process.getuid?.() !== 0) throw new Error(`the ${server} test server must run as root (it switches users and mounts a tmpfs); run npm test as root`)
}

/** A loopback port nothing listens on now (the kernel picks it). */
export async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  await once(server, 'close')
  if (address === null || typeof address === 'string') throw new Error('the kernel gave no port')
  return address.port
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function listening(port: number): Promise<boolean> {
  return new Promise(resolve => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

export interface ExportedFolder {
  /** The folder as the server sees it (in its mount namespace). */
  readonly path: string
  /** The same folder as this process sees it, for the independent reader. */
  readonly root: string
  /** Starts a server where it sees the folder (inside the tmpfs's namespace when there is one), its output appended to `log`. */
  spawn(command: string, args: string[], log: string): ChildProcess
  /** Ends the tmpfs (its namespace goes when its last server has been killed). */
  cleanup(): Promise<void>
}

/**
 * The folder `path` (created), or, with a size, a tmpfs of that size mounted on it in a private mount namespace
 * held by a waiting shell: servers started there through nsenter see the tmpfs, this process sees it through
 * /proc/<holder>/root, and the machine's mounts are never touched (nothing to unmount when a test dies).
 */
export async function exportFolder(path: string, sizeLimitBytes: number | undefined): Promise<ExportedFolder> {
  await mkdir(path, { recursive: true })
  const plain = (command: string, args: string[], log: string) => {
    const fd = openSync(log, 'a')
    try {
      return spawn(command, args, { stdio: ['ignore', fd, fd] })
    } finally {
      closeSync(fd)
    }
  }
  if (sizeLimitBytes === undefined) return { path, root: path, spawn: plain, cleanup: async () => {} }
  requireTool('unshare', 'util-linux')
  requireTool('nsenter', 'util-linux')
  // The shell waits on its stdin: it ends with this process even when a test dies before cleanup.
  const holder = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs -o "size=$1,mode=0777" lifeboat-share "$0" && echo mounted && exec cat', path, String(sizeLimitBytes)], { stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  holder.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  await new Promise<void>((resolve, reject) => {
    holder.stdout!.once('data', () => resolve())
    holder.once('error', reject)
    holder.once('exit', code => reject(new Error(`the tmpfs for the share did not mount (exit ${code}): ${stderr.trim()}`)))
  })
  return {
    path,
    root: `/proc/${holder.pid}/root${path}`,
    spawn: (command, args, log) => plain('nsenter', ['-t', String(holder.pid), '-m', `--wd=${path}`, '--', command, ...args], log),
    cleanup: () => killGroup(holder),
  }
}

/** SIGKILLs a server and, when it leads a process group (smbd makes one), every process it forked; waits for it. */
export async function killGroup(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  for (const pid of [-child.pid, child.pid]) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // No such group (ganesha makes none), or it exited between the check and the kill.
    }
  }
  await exited
}

/** Polls `ready` every 50 ms until it holds; fails with `why()` when the server exits first or after `seconds`. */
export async function waitUntil(ready: () => Promise<boolean>, child: ChildProcess, why: () => Promise<string>, seconds = 60): Promise<void> {
  const deadline = Date.now() + seconds * 1000
  let exited = false
  child.once('exit', () => (exited = true))
  for (;;) {
    if (await ready()) return
    if (exited || child.exitCode !== null || child.signalCode !== null) throw new Error(await why())
    if (Date.now() > deadline) {
      await killGroup(child)
      throw new Error(`${await why()} (not ready after ${seconds} s)`)
    }
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** The last lines of a server's log, for the error saying why it did not come up. */
export async function logTail(path: string, lines = 15): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '')
  return text.trimEnd().split('\n').slice(-lines).join('\n')
}

export type ServerLife = Pick<ShareServer, 'stop' | 'restart' | 'cleanup'>

/**
 * Starts a server (`start` spawns it and resolves once it serves, killing it when it does not) and gives the
 * ShareServer's stop (SIGKILL), restart and cleanup (stop, then `release` its folders; also when it never came up).
 */
export async function runServer(start: () => Promise<ChildProcess>, release: () => Promise<void>): Promise<ServerLife> {
  let child: ChildProcess | undefined
  const stop = async () => {
    const running = child
    child = undefined
    await killGroup(running)
  }
  try {
    child = await start()
  } catch (error) {
    await release()
    throw error
  }
  return {
    stop,
    restart: async () => {
      await stop()
      child = await start()
    },
    cleanup: async () => {
      await stop()
      await release()
    },
  }
}
