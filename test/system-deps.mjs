// The programs the tests need that npm cannot install: each with the Debian package that provides it.
// `npm test` installs the missing ones when it runs as root, and otherwise stops with the install line.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

export const SYSTEM_DEPS = [
  { command: 'qemu-img', pkg: 'qemu-utils', why: 'independent reader of the VHD files Lifeboat writes' },
  { command: 'vhdiinfo', pkg: 'libvhdi-utils', why: 'independent reader of differencing VHD chains' },
  { command: 'vhdimount', pkg: 'libvhdi-utils', why: 'mounts VHD chains to compare their content' },
  { command: 'fusermount3', pkg: 'fuse3', why: 'unmounts what vhdimount mounted' },
  { command: 'zstd', pkg: 'zstd', why: 'zstd compression of XVA streams (Node 20 has no zstd)' },
  { command: 'tar', pkg: 'tar', why: 'independent reader of the XVA files Lifeboat writes' },
  { command: 'unshare', pkg: 'util-linux', why: 'a tiny private tmpfs to test a remote that fills up, without root' },
  { command: 'tmux', pkg: 'tmux', why: 'end-to-end tests of the terminal UI in a real terminal' },
  { command: 'smbd', pkg: 'samba', why: 'the SMB server the SMB remote is tested against' },
  { command: 'smbclient', pkg: 'smbclient', why: 'independent reader of what Lifeboat writes to an SMB share' },
  { command: 'ganesha.nfsd', pkg: 'nfs-ganesha', why: 'the NFS server the NFS remote is tested against' },
  { file: '/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so', pkg: 'nfs-ganesha-vfs', why: "nfs-ganesha's backend that exports a local folder" },
  { command: 'rpcbind', pkg: 'rpcbind', why: 'the portmapper nfs-ganesha registers NFSv3 with' },
  { command: 'mkfs.ext4', pkg: 'e2fsprogs', why: 'ext2/3/4 images (mkfs -d) the ext reader and file-level restore tests read' },
  { command: 'debugfs', pkg: 'e2fsprogs', why: 'marks an ext journal as needing recovery in the ext reader test' },
  { command: 'sfdisk', pkg: 'fdisk', why: 'partition tables of the disks the file-level restore tests build' },
  { command: 'mkfs.xfs', pkg: 'xfsprogs', why: 'XFS volumes for the file-level restore tests' },
  { command: 'pvcreate', pkg: 'lvm2', why: 'LVM2 metadata written by the real tools (pvcreate, vgcreate, lvcreate) for the file-level restore tests' },
  { command: 'mkfs.ntfs', pkg: 'ntfs-3g', why: 'NTFS volumes for the file-level restore tests (ntfs-3g also mounts them)' },
  { command: 'unzip', pkg: 'unzip', why: 'independent reader of the zip archives a file-level restore writes' },
  { command: 'nfs-cp', pkg: 'libnfs-utils', why: 'independent reader of what Lifeboat writes to an NFS export' },
  { file: '/usr/sbin/sshd', pkg: 'openssh-server', why: 'the real sshd the proxy tests reach a proxy through, on a loopback port' },
  { command: 'ssh', pkg: 'openssh-client', why: "the daemon's transport to its proxies (ssh, ssh-keygen, ssh-keyscan)" },
]

export function hasCommand(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0
}

function present(dep) {
  return dep.command !== undefined ? hasCommand(dep.command) : existsSync(dep.file)
}

export function missingPackages() {
  return [...new Set(SYSTEM_DEPS.filter(d => !present(d)).map(d => d.pkg))]
}

export function installLine(pkgs) {
  return `apt-get update && apt-get install -y --no-install-recommends ${pkgs.join(' ')}`
}

/** Installs what is missing when root; returns an error sentence when it cannot. */
export function ensureSystemDeps({ log = console.error } = {}) {
  const missing = missingPackages()
  if (missing.length === 0) return undefined
  if (process.getuid?.() !== 0) {
    return `the tests need Debian packages that are not installed: ${missing.join(', ')}.\nInstall them as root with:\n  ${installLine(missing)}`
  }
  log(`installing missing Debian packages: ${missing.join(' ')}`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  for (const args of [['update', '-q'], ['install', '-y', '-q', '--no-install-recommends', ...missing]]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env })
    if (r.status !== 0) return `apt-get ${args[0]} failed (exit ${r.status}); run by hand:\n  ${installLine(missing)}`
  }
  const still = missingPackages()
  return still.length === 0 ? undefined : `still missing after install: ${still.join(', ')}`
}
