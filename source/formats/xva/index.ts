// XVA, XAPI's full VM export format: a tar of ova.xml (the VM's metadata as XML-RPC) and the disks in 1 MiB
// checksummed chunks. Streamed both ways with flat memory: written for full backups, read for restores and the lab.
export { XVA_CHUNK_SIZE, createXvaStream } from './writer.ts'
export type { XvaDisk } from './writer.ts'
export { readXva } from './reader.ts'
export type { XvaEntry } from './reader.ts'
export { parseOvaXml, renderOvaXml } from './ova-xml.ts'
export type { OvaXml } from './ova-xml.ts'
