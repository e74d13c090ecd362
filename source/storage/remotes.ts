// From a remote URL to its handler, composed in this one place: the backend of its type (each backend is
// one file plus its line in `backends`), XO's encryption right above it (what is stored), then the decorators
// — logging, retries, the parallel-request bound — then the file-level handler the repository works with.
import type { Backend } from './backend.ts'
import { withConcurrencyLimit, withLogging } from './decorators.ts'
import { remoteEncryptionKey, withEncryption } from './encryption.ts'
import { BackendHandler, type RemoteHandler } from './handler.ts'
import { AzureBackend } from './azure.ts'
import { LocalBackend } from './local.ts'
import { NfsBackend, type NfsRemote } from './nfs.ts'
import { S3Backend } from './s3.ts'
import { SmbBackend } from './smb.ts'
import { withRetries, type RetryPolicy } from './retry.ts'
import { parseRemoteUrl, redactRemoteUrl, type RemoteType, type RemoteUrl } from './url.ts'

type BackendFactory = (remote: RemoteUrl, label: string) => Backend

const backends: Record<RemoteType, BackendFactory> = {
  file: (remote, label) => new LocalBackend(remote.path, label),
  nfs: (remote, label) => new NfsBackend(remote as NfsRemote, label),
  smb: (remote, label) => new SmbBackend(remote as Extract<RemoteUrl, { type: 'smb' }>, label),
  s3: (remote, label) => new S3Backend(remote as Extract<RemoteUrl, { type: 's3' }>, label),
  azure: (remote, label) => new AzureBackend(remote as Extract<RemoteUrl, { type: 'azure' }>, label),
  azurite: (remote, label) => new AzureBackend(remote as Extract<RemoteUrl, { type: 'azurite' }>, label),
}

export interface OpenRemoteOptions {
  /** The retry policy; false gives the bare backend (no retries, no bound, no log): what the conformance suite also runs on. */
  retry?: RetryPolicy | false
  /** Where failed operations are logged (the daemon's log). */
  log?: (line: string) => void
}

/** The backend of a remote URL (encrypted when its URL has an encryptionKey), decorated unless `retry: false`. */
export function openBackend(url: string, options: OpenRemoteOptions = {}): Backend {
  const remote = parseRemoteUrl(url)
  const backend = withEncryption(backends[remote.type](remote, redactRemoteUrl(url)), remoteEncryptionKey(remote))
  return options.retry === false ? backend : decorate(backend, { ...(options.log && { log: options.log }), ...(options.retry && { retry: options.retry }) })
}

/** The decorators every remote gets, in their order: the log sees each attempt, the bound counts each request. */
export function decorate(backend: Backend, options: Omit<OpenRemoteOptions, 'retry'> & { retry?: RetryPolicy } = {}): Backend {
  const logged = options.log === undefined ? backend : withLogging(backend, options.log)
  return withConcurrencyLimit(withRetries(logged, options.retry))
}

/** The handler of a remote URL: its backend, decorated (pass `retry: false` to get the bare one). */
export function openRemote(url: string, options: OpenRemoteOptions = {}): RemoteHandler {
  return new BackendHandler(openBackend(url, options))
}
