// The part of ext2fs 4.2.5 (libext2fs compiled to wasm, no types of its own) that the file-restore benchmark compares with.
declare module 'ext2fs' {
  import type { Readable } from 'node:stream'
  import type { Disk } from 'file-disk'

  export interface Ext2Stats {
    mode: number
    size: number
    uid: number
    gid: number
    mtime: Date
    isDirectory(): boolean
    isFile(): boolean
    isSymbolicLink(): boolean
  }

  export interface Ext2Fs {
    promises: {
      readdir(path: string): Promise<string[]>
      lstat(path: string): Promise<Ext2Stats>
      readlink(path: string): Promise<string>
    }
    /** Binary-safe (its promises.readFile is not: it always decodes as utf8). */
    createReadStream(path: string): Readable
  }

  const ext2fs: {
    mount(disk: Disk, offset?: number): Promise<Ext2Fs>
    umount(fs: Ext2Fs): Promise<void>
  }
  export default ext2fs
}
