// Archives a file-level restore streams out: tar (pax) and store-only zip (ZIP64), both written as they go.
export { tarStream, tarHeader, tarPadding, TAR_BLOCK } from './tar.ts'
export { zipStream } from './zip.ts'
export type { ArchiveEntry } from './entry.ts'
