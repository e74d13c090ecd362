// VHD, the disk format of XO's delta backups and of XAPI's VDI exports: structures, stream parse and write,
// files, parent chains and in-place resumable merges. Everything the rest of Lifeboat uses is exported here.
export {
  VHD_SECTOR_SIZE, VHD_BLOCK_SIZE, ZERO_UUID, dateFromVhdTimestamp, vhdTimestamp,
  type VhdDiskType, type VhdFooter, type VhdHeader, type VhdParentLocator,
} from './structures.ts'
export { localFileSystem, type FileSystemAccess, type RandomAccessFile } from './fileSystem.ts'
export { openVhdStream, createVhdStream, vhdStreamLength, type VhdStreamReader, type VhdStreamOptions } from './stream.ts'
export { VhdFile, type VhdFileOptions } from './file.ts'
export { VhdChain, checkVhdChain } from './chain.ts'
export { mergeVhdChain, resumeVhdMergeIfAny, type MergeOptions } from './merge.ts'
