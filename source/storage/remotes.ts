// From a remote URL to its handler. Each backend is one file; adding NFS, SMB, S3 or Azure is that file
// plus its line in `backends` below.
import { LifeboatError } from '../util/errors.ts'
import type { RemoteHandler } from './handler.ts'
import { LocalHandler } from './local.ts'
import { withRetries, type RetryPolicy } from './retry.ts'
import { parseRemoteUrl, redactRemoteUrl, type RemoteType, type RemoteUrl } from './url.ts'

type Backend = (remote: RemoteUrl, label: string) => RemoteHandler

const backends: Partial<Record<RemoteType, Backend>> = {
  file: (remote, label) => new LocalHandler(remote.path, label),
}

const NAMES: Record<RemoteType, string> = { file: 'Local folder', nfs: 'NFS', smb: 'SMB', s3: 'S3', azure: 'Azure Blob', azurite: 'Azurite' }

/** The handler of a remote URL, wrapped in the retry policy (pass `retry: false` to get the bare handler). */
export function openRemote(url: string, options: { retry?: RetryPolicy | false } = {}): RemoteHandler {
  const remote = parseRemoteUrl(url)
  const backend = backends[remote.type]
  if (backend === undefined) {
    throw new LifeboatError(
      'REMOTE_TYPE_NOT_SUPPORTED',
      `${NAMES[remote.type]} remotes are not supported by this version of Lifeboat yet; use a local folder (file:///path), for example the share mounted by the system.`,
    )
  }
  const handler = backend(remote, redactRemoteUrl(url))
  return options.retry === false ? handler : withRetries(handler, options.retry)
}
