// ext2/3/4 read in user space, read-only, through a DiskReader: superblock and group descriptors (32 and 64-bit),
// inodes, extent trees and indirect blocks, linear and htree folders, inline data, symbolic links, sparse files.
export { ExtFileSystem, type Folder, type FolderCacheLimits } from './filesystem.ts'
export { readSuperblock, type Superblock } from './superblock.ts'
export { isDirectory, isRegular, isSymlink, type Inode } from './inode.ts'
