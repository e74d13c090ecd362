// s3rver (the only S3 server that runs here, test-infra.md §1) as a child process on a free port, in a
// scratch folder with one bucket: stop, kill and restart it on the same port and data for fault tests.
import { spawn, type ChildProcess } from 'node:child_process'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { endProcess, requireTool, run, tempDir } from './tools.ts'

export interface S3rver {
  /** An `s3+http://S3RVER:S3RVER@127.0.0.1:PORT/<bucket>/<dir>` remote URL (`s3://` with tls). */
  url: string
  port: number
  bucket: string
  /** The URL of another folder of the same bucket (each test its own, empty). */
  urlFor(dir: string): string
  /** Stops it for good and removes its data (in `after`). */
  stop(): Promise<void>
  /** SIGKILL, as a crash would; the data stays for restart(). */
  kill(): Promise<void>
  /** Starts it again on the same port and data folder (after kill, or while it runs). */
  restart(): Promise<void>
}

export const S3RVER_KEY = 'S3RVER'
export const S3RVER_SECRET = 'S3RVER'

// Prints the bound port on its first stdout line; the data stays in `directory` across restarts.
// s3rver walks one folder below a listed prefix only: a folder whose objects are all deeper (vdis/job/x.vhd)
// is missing from CommonPrefixes. The patch adds those, as S3 lists them (prefixes ending in '/' only).
const CHILD = `
  import { readdirSync, readFileSync } from 'node:fs'
  import { join } from 'node:path'
  const { default: S3rver } = await import(process.env.S3RVER_MODULE)
  const { default: Store } = await import(new URL('stores/filesystem.js', process.env.S3RVER_MODULE).href)
  const listObjects = Store.prototype.listObjects
  Store.prototype.listObjects = async function (bucket, options) {
    const result = await listObjects.call(this, bucket, options)
    const { delimiter, prefix = '', startAfter = '' } = options
    if (delimiter !== '/' || (prefix !== '' && !prefix.endsWith('/'))) return result
    const last = result.isTruncated ? result.objects.at(-1)?.key : undefined
    const dir = join(this.getBucketPath(bucket), prefix)
    const prefixes = new Set(result.commonPrefixes)
    let entries = []
    try { entries = readdirSync(dir, { withFileTypes: true }) } catch {}
    for (const entry of entries) {
      const common = prefix + entry.name + '/'
      if (!entry.isDirectory() || common <= startAfter || (last !== undefined && common > last)) continue
      if (readdirSync(join(dir, entry.name), { recursive: true }).some(name => String(name).endsWith('._S3rver_object'))) prefixes.add(common)
    }
    result.commonPrefixes = [...prefixes].sort()
    return result
  }
  const { default: account } = await import(new URL('models/account.js', process.env.S3RVER_MODULE).href)
  for (const [key, secret] of JSON.parse(process.env.S3RVER_KEYS)) account.DUMMY_ACCOUNT.createKeyPair(key, secret)
  const tls = process.env.S3RVER_TLS === '' ? {} : { key: readFileSync(process.env.S3RVER_TLS + '/key.pem'), cert: readFileSync(process.env.S3RVER_TLS + '/cert.pem') }
  const server = new S3rver({ address: '127.0.0.1', port: Number(process.env.S3RVER_PORT), directory: process.env.S3RVER_DIR, silent: true,
    configureBuckets: [{ name: process.env.S3RVER_BUCKET }], ...tls })
  const { port } = await server.run()
  process.stdout.write(JSON.stringify({ port }) + '\\n')
`

function s3rverModule(): string {
  try {
    return pathToFileURL(createRequire(import.meta.url).resolve('s3rver')).href
  } catch {
    throw new Error('s3rver is not installed; install it with: npm install --save-dev s3rver@3.7.1 (the S3 tests run against it)')
  }
}

/**
 * `keys`: more access key and secret pairs the server accepts (it checks the access key only, not the signature).
 * `tls`: HTTPS with a self-signed certificate made by openssl for 127.0.0.1 (the URL is then `s3://`).
 */
export async function startS3rver(options: { bucket?: string; dir?: string; keys?: Array<[string, string]>; tls?: boolean } = {}): Promise<S3rver> {
  const module = s3rverModule()
  const bucket = options.bucket ?? 'backups'
  const scratch = await tempDir('lifeboat-s3rver-')
  if (options.tls === true) {
    requireTool('openssl', 'openssl')
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(scratch.path, 'key.pem'), '-out', join(scratch.path, 'cert.pem')])
  }
  let child: ChildProcess | undefined
  let port = 0

  async function start(): Promise<void> {
    const process_ = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
      // The legacy provider: s3rver's continuation tokens are DES-encrypted (paging fails without it).
      env: { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider', S3RVER_MODULE: module, S3RVER_PORT: String(port), S3RVER_DIR: join(scratch.path, 'data'), S3RVER_BUCKET: bucket, S3RVER_KEYS: JSON.stringify(options.keys ?? []), S3RVER_TLS: options.tls === true ? scratch.path : '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    child = process_
    let stderr = ''
    process_.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    let stdout = ''
    const bound = await new Promise<number>((resolve, reject) => {
      process_.stdout!.on('data', (d: Buffer) => {
        stdout += d.toString()
        const line = stdout.split('\n')[0]
        if (stdout.includes('\n')) {
          try {
            resolve((JSON.parse(line!) as { port: number }).port)
          } catch {
            reject(new Error(`s3rver printed ${JSON.stringify(line)} instead of its port`))
          }
        }
      })
      process_.once('error', reject)
      process_.once('exit', code => reject(new Error(`s3rver exited (${code}) before listening: ${stderr.trim()}`)))
    })
    port = bound
  }

  async function end(signal: NodeJS.Signals): Promise<void> {
    const running = child
    child = undefined
    await endProcess(running, signal)
  }

  await start()
  const urlFor = (dir: string) => `${options.tls === true ? 's3' : 's3+http'}://${S3RVER_KEY}:${S3RVER_SECRET}@127.0.0.1:${port}/${bucket}/${dir}`
  return {
    get url() {
      return urlFor(options.dir ?? 'dir')
    },
    get port() {
      return port
    },
    bucket,
    urlFor,
    stop: async () => {
      await end('SIGTERM')
      await scratch.cleanup()
    },
    kill: () => end('SIGKILL'),
    restart: async () => {
      await end('SIGTERM')
      await start()
    },
  }
}
