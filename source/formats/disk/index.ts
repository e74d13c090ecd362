// A disk's layout for file-level restore: random access over a block source with a bounded cache, partition
// tables (MBR, GPT), LVM2 volumes (linear, striped) and the content of each by its superblock.
export { cachedBlockReader, sliceReader, DEFAULT_CACHE_BLOCKS, type DiskReader, type BlockSource } from './reader.ts'
export { readPartitionTable, SECTOR, type Partition, type PartitionTable } from './partitions.ts'
export { readPhysicalVolume, volumeGroupOf, logicalVolumeReader, parseLvmText, type VolumeGroup, type LogicalVolume, type PhysicalVolume } from './lvm.ts'
export { probeContent, fileSystemLabel, type ContentKind } from './probe.ts'
