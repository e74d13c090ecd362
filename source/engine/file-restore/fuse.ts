// A read-only FUSE file system of one file, spoken straight over /dev/fuse (no native module): it shows a
// restore point's disk, read from its VHD chain on demand, as a file the kernel can loop-mount (XFS) or
// ntfs-3g can open (NTFS). Root only: the mount goes through mount(8) with the /dev/fuse descriptor passed in.
import { open, read, write, close, constants } from 'node:fs'
import { promisify } from 'node:util'
import { spawn } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { LifeboatError } from '../../util/errors.ts'
import type { DiskReader } from '../../formats/disk/index.ts'

const readAsync = promisify(read)
const writeAsync = promisify(write)
const openAsync = promisify(open)
const closeAsync = promisify(close)

const OP = { LOOKUP: 1, FORGET: 2, GETATTR: 3, OPEN: 14, READ: 15, STATFS: 17, RELEASE: 18, FLUSH: 25, INIT: 26, OPENDIR: 27, READDIR: 28, RELEASEDIR: 29, ACCESS: 34, INTERRUPT: 36, DESTROY: 38, BATCH_FORGET: 42 } as const
const NO_REPLY = new Set<number>([OP.FORGET, OP.BATCH_FORGET, OP.INTERRUPT])
const ENOENT = 2
const EIO = 5
const ENOSYS = 38
const ROOT = 1n
const FILE = 2n
const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const MAX_WRITE = 128 * 1024
const IN_HEADER = 40
const OUT_HEADER = 16
const ATTR_SIZE = 88

export interface FuseFile {
  /** The mount point; the disk is `${dir}/${name}`. */
  dir: string
  path: string
  close(): Promise<void>
}

/** Mounts `dir` (an empty folder) showing one read-only file `name` whose bytes come from `disk`. */
export async function mountFuseFile(dir: string, name: string, disk: DiskReader): Promise<FuseFile> {
  if (process.getuid?.() !== 0) throw new LifeboatError('FILE_RESTORE_NEEDS_ROOT', 'Showing a disk to the kernel (FUSE) needs root: run the Lifeboat daemon as root.')
  // Non-blocking: a read waiting for the kernel would hold one of libuv's four threads, and a few mounts
  // would starve every file read of the process (the chain's among them): a deadlock.
  const fd = await openAsync('/dev/fuse', constants.O_RDWR | constants.O_NONBLOCK)
  let closed = false
  const serve = serveRequests(fd, name, disk, () => closed)
  try {
    await run('mount', ['-i', '-t', 'fuse.lifeboat', '-o', `ro,fd=3,rootmode=${(S_IFDIR).toString(8)},user_id=0,group_id=0,allow_other,default_permissions`, 'lifeboat', dir], { fd })
  } catch (error) {
    closed = true
    await closeAsync(fd).catch(() => {})
    throw error
  }
  return {
    dir,
    path: `${dir}/${name}`,
    async close() {
      if (closed) return
      closed = true
      await unmount(dir)
      await serve
      await closeAsync(fd).catch(() => {})
    },
  }
}

/** Lazily unmounts a mount point; an already unmounted one is no error. */
export async function unmount(dir: string, options: { timeoutMs?: number } = {}): Promise<void> {
  await run('umount', ['-l', dir], options).catch(error => {
    if (!/not mounted|no mount point|not found/i.test((error as Error).message)) throw error
  })
}

/**
 * Runs a system command; its stderr is the error's message when it fails. `fd` is passed in as descriptor 3.
 * `timeoutMs`: the command is killed and the promise rejected then, without waiting for a child stuck in the kernel.
 */
export function run(command: string, args: string[], options: { fd?: number; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdio: Array<'ignore' | 'pipe' | number> = ['ignore', 'pipe', 'pipe']
    if (options.fd !== undefined) stdio.push(options.fd)
    const child = spawn(command, args, { stdio })
    let out = ''
    let err = ''
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => {
      child.kill('SIGKILL')
      reject(new LifeboatError('FILE_RESTORE_SYSTEM_COMMAND', `${command} ${args.join(' ')} did not end within ${options.timeoutMs! / 1000} s`))
    }, options.timeoutMs)
    timer?.unref()
    child.stdout!.on('data', chunk => (out += chunk))
    child.stderr!.on('data', chunk => (err += chunk))
    child.on('error', error => {
      clearTimeout(timer)
      reject(new LifeboatError('FILE_RESTORE_TOOL_MISSING', `${command} could not be run (${error.message}); install it (util-linux, lvm2, ntfs-3g or xfsprogs).`, { cause: error }))
    })
    child.on('close', code => {
      clearTimeout(timer)
      if (code === 0) resolve(out)
      else reject(new LifeboatError('FILE_RESTORE_SYSTEM_COMMAND', `${command} ${args.join(' ')} failed: ${err.trim() || `exit ${code}`}`))
    })
  })
}

async function serveRequests(fd: number, name: string, disk: DiskReader, closed: () => boolean): Promise<void> {
  const buffer = Buffer.alloc(MAX_WRITE + 4096)
  const nameBytes = Buffer.from(name)
  let idle = 0
  for (;;) {
    let length: number
    try {
      ;({ bytesRead: length } = await readAsync(fd, buffer, 0, buffer.length, null))
      idle = 0
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      // ENODEV: unmounted; EPERM: not mounted yet (mount(8) waits for our INIT answer, so we read first);
      // EINTR/EAGAIN: try again; ENOENT: a request interrupted before it was read.
      if (code === 'ENODEV' || closed()) return
      // Nothing to read: wait a little longer each time, up to 20 ms, so that an idle mount costs nothing.
      if (code === 'EPERM' || code === 'EAGAIN') await sleep((idle = Math.min(20, idle + 1)))
      if (code === 'EPERM' || code === 'EINTR' || code === 'EAGAIN' || code === 'ENOENT') continue
      return
    }
    if (length < IN_HEADER) continue
    const request = Buffer.from(buffer.subarray(0, length))
    const opcode = request.readUInt32LE(4)
    const unique = request.readBigUInt64LE(8)
    const node = request.readBigUInt64LE(16)
    if (NO_REPLY.has(opcode)) continue
    if (opcode === OP.DESTROY) {
      await reply(fd, unique, 0, Buffer.alloc(0))
      return
    }
    // Answered concurrently: the kernel reads ahead with several requests in flight.
    void answer(opcode, node, request.subarray(IN_HEADER), nameBytes, disk).then(
      body => reply(fd, unique, 0, body),
      (error: unknown) => reply(fd, unique, typeof error === 'number' ? error : EIO, Buffer.alloc(0)),
    ).catch(() => {})
  }
}

async function answer(opcode: number, node: bigint, body: Buffer, name: Buffer, disk: DiskReader): Promise<Buffer> {
  switch (opcode) {
    case OP.INIT: {
      const out = Buffer.alloc(64)
      out.writeUInt32LE(7, 0)
      out.writeUInt32LE(Math.min(body.readUInt32LE(4), 31), 4)
      out.writeUInt32LE(body.readUInt32LE(8), 8)
      out.writeUInt32LE(0, 12)
      out.writeUInt16LE(16, 16)
      out.writeUInt16LE(12, 18)
      out.writeUInt32LE(MAX_WRITE, 20)
      out.writeUInt32LE(1, 24)
      out.writeUInt16LE(MAX_WRITE / 4096, 28)
      return out
    }
    case OP.LOOKUP: {
      const asked = body.subarray(0, body.indexOf(0))
      if (node !== ROOT || !asked.equals(name)) throw ENOENT
      const out = Buffer.alloc(40 + ATTR_SIZE)
      out.writeBigUInt64LE(FILE, 0)
      out.writeBigUInt64LE(3600n, 16)
      out.writeBigUInt64LE(3600n, 24)
      attributes(FILE, disk.size).copy(out, 40)
      return out
    }
    case OP.GETATTR: {
      if (node !== ROOT && node !== FILE) throw ENOENT
      const out = Buffer.alloc(16 + ATTR_SIZE)
      out.writeBigUInt64LE(3600n, 0)
      attributes(node, disk.size).copy(out, 16)
      return out
    }
    case OP.OPEN:
    case OP.OPENDIR: {
      const out = Buffer.alloc(16)
      // FOPEN_KEEP_CACHE: the content never changes.
      if (opcode === OP.OPEN) out.writeUInt32LE(2, 8)
      return out
    }
    case OP.READ: {
      const offset = Number(body.readBigUInt64LE(8))
      const size = body.readUInt32LE(16)
      const length = Math.max(0, Math.min(size, disk.size - offset))
      return length === 0 ? Buffer.alloc(0) : disk.read(offset, length)
    }
    case OP.READDIR: {
      const offset = Number(body.readBigUInt64LE(8))
      const entries: Array<[bigint, string, number]> = [[ROOT, '.', 4], [ROOT, '..', 4], [FILE, name.toString(), 8]]
      return Buffer.concat(entries.slice(offset).map(([ino, entry, type], k) => dirent(ino, offset + k + 1, entry, type)))
    }
    case OP.STATFS:
      return Buffer.alloc(80)
    case OP.RELEASE:
    case OP.RELEASEDIR:
    case OP.FLUSH:
    case OP.ACCESS:
      return Buffer.alloc(0)
    default:
      throw ENOSYS
  }
}

function attributes(node: bigint, size: number): Buffer {
  const attr = Buffer.alloc(ATTR_SIZE)
  const file = node === FILE
  attr.writeBigUInt64LE(node, 0)
  attr.writeBigUInt64LE(BigInt(file ? size : 0), 8)
  attr.writeBigUInt64LE(BigInt(file ? Math.ceil(size / 512) : 0), 16)
  attr.writeUInt32LE(file ? S_IFREG | 0o444 : S_IFDIR | 0o555, 60)
  attr.writeUInt32LE(file ? 1 : 2, 64)
  attr.writeUInt32LE(4096, 80)
  return attr
}

function dirent(ino: bigint, offset: number, name: string, type: number): Buffer {
  const bytes = Buffer.from(name)
  const out = Buffer.alloc(24 + Math.ceil(bytes.length / 8) * 8)
  out.writeBigUInt64LE(ino, 0)
  out.writeBigUInt64LE(BigInt(offset), 8)
  out.writeUInt32LE(bytes.length, 16)
  out.writeUInt32LE(type, 20)
  bytes.copy(out, 24)
  return out
}

async function reply(fd: number, unique: bigint, errno: number, body: Buffer): Promise<void> {
  const header = Buffer.alloc(OUT_HEADER)
  header.writeUInt32LE(OUT_HEADER + (errno === 0 ? body.length : 0), 0)
  header.writeInt32LE(-errno, 4)
  header.writeBigUInt64LE(unique, 8)
  const message = errno === 0 ? Buffer.concat([header, body]) : header
  await writeAsync(fd, message, 0, message.length, null)
}
