// Remotes as the clients show them: the URL forms (the storage's own parser, the one definition, without
// its backends) and what a remote is and can do in an administrator's words, for `remote info` and the TUI.
import { formatBytes } from '../util/human.ts'
import { formatRemoteUrl, parseRemoteUrl } from '../storage/url.ts'
import type { RemoteInfo } from './methods.ts'

export { formatRemoteUrl, parseRemoteUrl, redactRemoteUrl, type RemoteUrl, type RemoteType } from '../storage/url.ts'

/** A URL typed in a shell, which cannot hold a NUL: in an smb:// URL, the first \0 after the share is XO's NUL (terminalSafe shows it so). */
export function typedRemoteUrl(url: string): string {
  if (!url.startsWith('smb://') || url.includes('\0')) return url
  const remote = parseRemoteUrl(url)
  if (remote.type !== 'smb') return url
  // After host\share: a share's name may itself start with 0.
  const share = remote.host.indexOf('\\')
  const at = share === -1 ? -1 : remote.host.indexOf('\\0', share + 1)
  if (at === -1) return url
  return formatRemoteUrl({ ...remote, host: remote.host.slice(0, at), path: remote.host.slice(at + 2).replaceAll('\\', '/') })
}

export const REMOTE_TYPE_NAMES: Record<RemoteInfo['type'], string> = { file: 'local folder', nfs: 'NFS', smb: 'SMB', s3: 'S3', azure: 'Azure Blob' }

/** Label and text, one line each, of what `remote info` shows (secrets are already redacted by the daemon). */
export function remoteInfoLines(info: RemoteInfo): Array<[string, string]> {
  const lines: Array<[string, string]> = [
    ['type', REMOTE_TYPE_NAMES[info.type]],
    ['URL', info.url],
    ...(info.proxy === undefined ? [] : [['lives on', `the proxy "${info.proxy}" (opened there; the appliance reaches it through the proxy)`] as [string, string]]),
    ['status', info.status === 'ok' ? '✔ ok' : `✖ ${info.error === undefined ? 'error' : `${info.error.code}: ${info.error.message}`}`],
    ['free space', freeSpace(info)],
    ['encryption', info.encryption ? 'on (encryptionKey)' : 'off'],
    ['VHD layout', info.vhdDirectory ? `VhdDirectory${info.type === 's3' || info.type === 'azure' ? ' (always, on object stores)' : ' (useVhdDirectory)'}` : 'VHD files'],
  ]
  const { capabilities } = info
  lines.push(
    ['commit', capabilities.commit === 'rename' ? 'written aside, then renamed into place' : 'written whole, the final name last'],
    ['locks', capabilities.locks],
    ['merges', capabilities.merges === 'in place' ? 'in place (VHD files)' : 'block copies (VhdDirectory)'],
    ['connections', String(capabilities.connections)],
    ['largest file', capabilities.maxObjectSize === undefined ? 'no limit' : formatBytes(capabilities.maxObjectSize)],
  )
  return lines
}

function freeSpace(info: RemoteInfo): string {
  if (info.space !== undefined) return `${formatBytes(info.space.free)} free of ${formatBytes(info.space.size)} (${formatBytes(info.space.used)} used)`
  if (info.status !== 'ok') return 'unknown (the remote is in error)'
  return info.type === 's3' || info.type === 'azure' ? 'unknown (S3 and Azure do not report it)' : 'unknown'
}
