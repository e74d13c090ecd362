// Files over NFSv3: reads of a whole range in as many READs as the server needs, UNSTABLE writes checked
// against the server's write verifier at COMMIT, and the random-access file the VHD merge works on.
import type { RandomAccessFile } from '../../formats/vhd/index.ts'
import { Stable, type FileHandle, type Nfs3Client } from './nfs3.ts'

/** Requests of one transfer in flight at once. */
export const IN_FLIGHT = 8
// UNSTABLE writes are kept until a COMMIT confirms them, to be sent again if the server lost them.
const MAX_UNCOMMITTED = 32 * 1024 * 1024

/** `count` bytes at `offset`, in as many READs as the server needs; fewer only at the end of the file. */
export async function readFully(client: Nfs3Client, handle: FileHandle, offset: number, count: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = []
  let done = 0
  while (done < count) {
    const { data, eof } = await client.read(handle, offset + done, count - done, what)
    parts.push(data)
    done += data.length
    if (eof || data.length === 0) break
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts)
}

/**
 * UNSTABLE WRITEs, several in flight, then a COMMIT. The server's write verifier changes when it restarts
 * and loses what it had not committed: the writes made under another verifier are sent again, FILE_SYNC, in
 * the order they were made. Two WRITEs in flight at once may be applied in either order, so a write that
 * overlaps one in flight waits for it (a merge rewrites the same BAT sector, and a block overwrites the footer
 * it moves): what the file holds is always what the last write of each byte said.
 */
export class UnstableWrites {
  readonly #client: Nfs3Client
  readonly #handle: FileHandle
  readonly #what: string
  readonly #inFlight = new Map<Promise<void>, { start: number; end: number }>()
  #uncommitted: Array<{ order: number; offset: number; data: Buffer; verifier: Buffer }> = []
  #uncommittedBytes = 0
  #issued = 0
  #failure: unknown

  constructor(client: Nfs3Client, handle: FileHandle, what: string) {
    this.#client = client
    this.#handle = handle
    this.#what = what
  }

  /** Sends a WRITE and returns once there is room for another; `data` must not change until commit(). */
  async write(offset: number, data: Buffer): Promise<void> {
    const range = { start: offset, end: offset + data.length }
    for (;;) {
      const overlapping = [...this.#inFlight].filter(([, other]) => other.start < range.end && range.start < other.end).map(([sending]) => sending)
      if (overlapping.length > 0) await Promise.all(overlapping)
      else if (this.#inFlight.size >= IN_FLIGHT) await Promise.race(this.#inFlight.keys())
      else break
    }
    if (this.#failure !== undefined) throw this.#failure
    const order = this.#issued++
    const sending: Promise<void> = this.#send(order, offset, data).then(
      () => void this.#inFlight.delete(sending),
      error => {
        this.#failure ??= error
        this.#inFlight.delete(sending)
      },
    )
    this.#inFlight.set(sending, range)
    if (this.#uncommittedBytes >= MAX_UNCOMMITTED) await this.commit()
  }

  /** Waits for the WRITEs in flight: what they wrote is then visible to READs. */
  async settle(): Promise<void> {
    await Promise.all(this.#inFlight.keys())
    if (this.#failure !== undefined) throw this.#failure
  }

  async commit(): Promise<void> {
    await this.settle()
    // The writes answered so far; those a concurrent caller sends meanwhile wait for the next COMMIT.
    const batch = this.#uncommitted.sort((a, b) => a.order - b.order)
    this.#uncommitted = []
    this.#uncommittedBytes -= batch.reduce((sum, write) => sum + write.data.length, 0)
    if (batch.length === 0) return
    const verifier = await this.#client.commit(this.#handle, `COMMIT ${this.#what}`)
    for (const write of batch) {
      if (!write.verifier.equals(verifier)) await this.#client.write(this.#handle, write.offset, write.data, Stable.fileSync, `WRITE ${this.#what} again (the server restarted before committing it)`)
    }
  }

  async #send(order: number, offset: number, data: Buffer): Promise<void> {
    let done = 0
    while (done < data.length) {
      const reply = await this.#client.write(this.#handle, offset + done, data.subarray(done), Stable.unstable, `WRITE ${this.#what}`)
      if (reply.count === 0) throw Object.assign(new Error(`the NFS server wrote nothing of WRITE ${this.#what} at ${offset + done}`), { code: 'EIO' })
      if (reply.committed === Stable.unstable) {
        this.#uncommitted.push({ order, offset: offset + done, data: data.subarray(done, done + reply.count), verifier: reply.verifier })
        this.#uncommittedBytes += reply.count
      }
      done += reply.count
    }
  }
}

/** Random access on one file handle, kept for the file's whole use. */
export class NfsFile implements RandomAccessFile {
  readonly #client: Nfs3Client
  readonly #handle: FileHandle
  readonly #relative: string
  readonly #mode: 'r' | 'r+'
  readonly #sizes: { read: number; write: number }
  readonly #guard: <T>(what: string, operation: () => Promise<T>) => Promise<T>
  readonly #writes: UnstableWrites

  constructor(client: Nfs3Client, handle: FileHandle, relative: string, mode: 'r' | 'r+', sizes: { read: number; write: number }, guard: <T>(what: string, operation: () => Promise<T>) => Promise<T>) {
    this.#client = client
    this.#handle = handle
    this.#relative = relative
    this.#mode = mode
    this.#sizes = sizes
    this.#guard = guard
    this.#writes = new UnstableWrites(client, handle, relative)
  }

  /** READs of the server's size, all at once; what the writes before sent is read back. */
  read(buffer: Buffer, position: number): Promise<number> {
    return this.#guard(`read ${this.#relative}`, async () => {
      await this.#writes.settle()
      const step = this.#sizes.read
      const parts = await Promise.all(
        Array.from({ length: Math.ceil(buffer.length / step) }, (_, i) => readFully(this.#client, this.#handle, position + i * step, Math.min(step, buffer.length - i * step), `READ ${this.#relative}`)),
      )
      let done = 0
      for (const part of parts) {
        part.copy(buffer, done)
        done += part.length
        // The end of the file: nothing after a short part.
        if (part.length < step) break
      }
      return done
    })
  }

  /** Write-behind, as a kernel NFS client does: returns once sent; a failed WRITE fails the next operation, at the latest close(). */
  write(buffer: Buffer, position: number): Promise<void> {
    return this.#guard(`write ${this.#relative}`, async () => {
      if (this.#mode !== 'r+') throw Object.assign(new Error(`${this.#relative} was opened for reading only`), { code: 'EBADF' })
      // A copy: the caller may reuse its buffer, and an uncommitted write may have to be sent again.
      const data = Buffer.from(buffer)
      for (let done = 0; done < data.length; done += this.#sizes.write) await this.#writes.write(position + done, data.subarray(done, done + this.#sizes.write))
    })
  }

  size(): Promise<number> {
    return this.#guard(`stat ${this.#relative}`, async () => {
      await this.#writes.settle()
      return (await this.#client.getattr(this.#handle, `GETATTR ${this.#relative}`)).size
    })
  }

  truncate(size: number): Promise<void> {
    return this.#guard(`truncate ${this.#relative}`, async () => {
      if (this.#mode !== 'r+') throw Object.assign(new Error(`${this.#relative} was opened for reading only`), { code: 'EBADF' })
      // Uncommitted writes past the new end must not be sent again after it.
      await this.#writes.commit()
      await this.#client.setattr(this.#handle, { size }, `SETATTR ${this.#relative}`)
    })
  }

  close(): Promise<void> {
    return this.#guard(`close ${this.#relative}`, () => this.#writes.commit())
  }
}
