// VHD, the disk format of XO's delta backups and of XAPI's VDI exports: structures, stream parse and write,
// files, XO's VhdDirectory and aliases, parent chains and resumable merges. Everything the rest of Lifeboat uses is exported here.
export {
  VHD_SECTOR_SIZE, VHD_BLOCK_SIZE, ZERO_UUID, dateFromVhdTimestamp, vhdTimestamp,
  type VhdDiskType, type VhdFooter, type VhdHeader, type VhdParentLocator,
} from './structures.ts'
export { localFileSystem, type FileSystemAccess, type RandomAccessFile } from './fileSystem.ts'
export { openVhdStream, createVhdStream, vhdStreamLength, type VhdStreamReader, type VhdStreamOptions } from './stream.ts'
export { VhdFile, type VhdFileOptions } from './file.ts'
export type { Vhd } from './vhd.ts'
export { isVhdAlias, readVhdAlias, writeVhdAlias, VHD_ALIAS_MAX_LENGTH } from './aliases.ts'
export {
  VhdDirectory, openVhd, isVhdDirectory, writeVhdDirectory, vhdDirectoryBlockName,
  type VhdCompression, type VhdDirectoryOpenOptions, type VhdDirectoryWriteOptions,
} from './directory.ts'
export { VhdChain, ahead, checkVhdChain, openVhdFiles } from './chain.ts'
export { mergeVhdChain, resumeVhdMergeIfAny, type MergeOptions } from './merge.ts'
export { statePathOf as mergeStatePath } from './merge-state.ts'
export {
  BLOCK_HASHES_SUFFIX, BlockHashRecorder, BlockHashTable, blockHashesPath, pendingMergeHashesPath, readBlockHashes, removeBlockHashes, writeBlockHashes,
  type BlockHashesUnavailable,
} from './block-hashes.ts'
