// Remote URLs in Xen Orchestra's forms (xo-remote-parser), so remotes move between XO and Lifeboat
// unchanged: parse, format (the inverse) and a redacted form safe for logs and screens.
import { LifeboatError } from '../util/errors.ts'

/** Query options (`?useVhdDirectory=true&encryptionKey="…"`); values are JSON-encoded in the URL. */
export type RemoteOptions = Record<string, unknown>

export type RemoteUrl =
  | { type: 'file'; path: string; options: RemoteOptions }
  | { type: 'nfs'; host: string; port?: string; path: string; options: RemoteOptions }
  | { type: 'smb'; username: string; password: string; domain: string; host: string; path: string; options: RemoteOptions }
  | { type: 's3'; protocol: 'https' | 'http'; host: string; path: string; username: string; password: string; region?: string; options: RemoteOptions }
  | { type: 'azure' | 'azurite'; protocol: 'https' | 'http'; host: string; port: string; path: string; username: string; password: string; options: RemoteOptions }

export type RemoteType = RemoteUrl['type']

const NFS = /^([^:]+):(?:(\d+):)?([^:?]+)(\?[^?]*)?$/
const SMB = /^([^:]+):(.+)@([^@]+)\\\\([^\0?]+)(?:\0([^?]*))?(\?[^?]*)?$/
// Not XO's: no password (`user@DOMAIN…`, `user:@…`), as typed when it is given aside.
const SMB_NO_PASSWORD = /^([^:]+?):?@([^@]+)\\\\([^\0?]+)(?:\0([^?]*))?(\?[^?]*)?$/
// A URL is small; anything longer is not a remote URL and is refused before any regex runs on it.
const MAX_URL_LENGTH = 8192

export function parseRemoteUrl(url: string): RemoteUrl {
  if (url.length > MAX_URL_LENGTH) throw badUrl(url, `it is longer than ${MAX_URL_LENGTH} characters`)
  const separator = url.indexOf('://')
  const scheme = separator === -1 ? '' : url.slice(0, separator)
  const rest = url.slice(separator + 3)
  switch (scheme) {
    case 'file': {
      const [path = '', search = ''] = rest.split('?')
      return { type: 'file', path: withLeadingSlash(path), options: parseOptions(search) }
    }
    case 'nfs': {
      const match = NFS.exec(rest)
      if (match === null) throw badUrl(url, 'the NFS form is nfs://host[:port]:/export/path')
      const [, host = '', port, path = '', search = ''] = match
      return { type: 'nfs', host, ...(port !== undefined && { port }), path: withLeadingSlash(path), options: parseOptions(search) }
    }
    case 'smb': {
      const match = SMB.exec(rest)
      const bare = match === null ? SMB_NO_PASSWORD.exec(rest) : null
      if (match === null && bare === null) throw badUrl(url, 'the SMB form is smb://user:password@DOMAIN\\\\host\\share\\0sub\\dir')
      const [, username = '', password = '', domain = '', host = '', path = '', search = ''] = match ?? [bare![0], bare![1], '', ...bare!.slice(2)]
      return { type: 'smb', username, password, domain, host, path, options: parseOptions(search) }
    }
    case 's3':
    case 's3+http': {
      const parts = parseCredentialsUrl(url)
      const region = parts.hash === '' || parts.hash === '#' ? undefined : parts.hash.slice(1)
      return {
        type: 's3',
        protocol: scheme === 's3' ? 'https' : 'http',
        host: parts.host,
        path: parts.path,
        username: parts.username,
        password: parts.password,
        ...(region !== undefined && { region }),
        options: parseOptions(parts.search),
      }
    }
    case 'azure':
    case 'azurite':
    case 'azurite+http': {
      const parts = parseCredentialsUrl(url)
      return {
        type: scheme === 'azure' ? 'azure' : 'azurite',
        protocol: scheme === 'azurite+http' ? 'http' : 'https',
        host: parts.host,
        port: parts.port,
        path: parts.path,
        username: parts.username,
        password: parts.password,
        options: parseOptions(parts.search),
      }
    }
    default:
      throw badUrl(url, 'it should start with file://, nfs://, smb://, s3://, s3+http://, azure://, azurite:// or azurite+http://')
  }
}

export function formatRemoteUrl(remote: RemoteUrl): string {
  let url: string
  switch (remote.type) {
    case 'file':
      url = 'file://'
      break
    case 'nfs':
      url = `nfs://${remote.host}:${remote.port !== undefined ? `${remote.port}:` : ''}`
      break
    case 'smb':
      url = `smb://${remote.username}:${remote.password}@${remote.domain}\\\\${remote.host}`
      break
    case 's3':
      url = `${remote.protocol === 'https' ? 's3' : 's3+http'}://${credentials(remote)}`
      break
    case 'azure':
      url = `azure://${credentials(remote)}`
      break
    case 'azurite':
      url = `${remote.protocol === 'https' ? 'azurite' : 'azurite+http'}://${credentials(remote)}`
      break
  }
  const segments = remote.path.split('/').map(s => s.trim()).filter(Boolean)
  // XO's own FIXME: SMB sub-paths are stored with backslashes after a NUL.
  url += remote.type === 'smb' ? `\0${segments.join('\\')}` : `/${segments.join('/')}`
  const search = formatOptions(remote.options)
  if (search !== '') url += `?${search}`
  if (remote.type === 's3' && remote.region !== undefined) url += `#${remote.region}`
  return url
}

const SECRET_OPTIONS = ['encryptionKey']
const REDACTED = '***'

/** The URL with passwords, keys and encryption keys replaced by ***: for logs, screens and error messages. */
export function redactRemoteUrl(url: string): string {
  let remote: RemoteUrl
  try {
    remote = parseRemoteUrl(url)
  } catch {
    return schemeOnly(url)
  }
  const options = { ...remote.options }
  for (const key of SECRET_OPTIONS) if (key in options) options[key] = REDACTED
  const redacted = 'password' in remote ? { ...remote, password: REDACTED, options } : { ...remote, options }
  return formatRemoteUrl(redacted)
}

function credentials(remote: { username: string; password: string; host: string }): string {
  return `${encodeURIComponent(remote.username)}:${encodeURIComponent(remote.password)}@${remote.host}`
}

function parseCredentialsUrl(url: string) {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw badUrl(url, 'the host or the credentials are malformed (encode ":", "@" and "/" in keys with %3A, %40, %2F)')
  }
  try {
    return {
      hash: parsed.hash,
      host: parsed.host,
      port: parsed.port,
      path: decodeURIComponent(parsed.pathname),
      username: decodeURIComponent(parsed.username),
      password: decodeURIComponent(parsed.password),
      search: parsed.search,
    }
  } catch {
    throw badUrl(url, 'a %-escape in it is invalid')
  }
}

function parseOptions(search: string): RemoteOptions {
  const options: RemoteOptions = {}
  for (const [key, value] of new URLSearchParams(search)) {
    // XO once recorded empty values for false (its #6270); read them the way XO does.
    if (value === '') options[key] = false
    else {
      try {
        options[key] = JSON.parse(value)
      } catch {
        options[key] = value
      }
    }
  }
  return options
}

function formatOptions(options: RemoteOptions): string {
  const search = new URLSearchParams()
  for (const [key, value] of Object.entries(options)) if (value !== undefined) search.append(key, JSON.stringify(value))
  return search.toString()
}

function withLeadingSlash(path: string): string {
  return `/${path.replace(/^\/+/, '')}`
}

function badUrl(url: string, why: string): LifeboatError {
  return new LifeboatError('REMOTE_BAD_URL', `The remote URL ${schemeOnly(url)} is not valid: ${why}.`)
}

// A URL we cannot parse cannot be redacted field by field (where would the secret be?): keep the scheme only.
function schemeOnly(url: string): string {
  const separator = url.indexOf('://')
  return separator === -1 || separator > 20 ? '<not a remote URL>' : `${url.slice(0, separator)}://${REDACTED}`
}
