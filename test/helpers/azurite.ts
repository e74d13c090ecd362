// azurite's blob service (test-infra.md §2) as a child process on a free port, in a scratch folder with one
// container: stop, kill and restart it on the same port and data for fault tests.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob'
import { AzureBackend } from '../../source/storage/azure.ts'
import { parseRemoteUrl, redactRemoteUrl } from '../../source/storage/url.ts'
import { endProcess, tempDir } from './tools.ts'

export interface Azurite {
  /** An `azurite+http://devstoreaccount1:<key>@127.0.0.1:PORT/<container>/<dir>` remote URL. */
  url: string
  port: number
  container: string
  /** The URL of another folder (each test its own, empty), in the container or in another one (not created). */
  urlFor(dir: string, container?: string): string
  /** Stops it for good and removes its data (in `after`). */
  stop(): Promise<void>
  /** SIGKILL, as a crash would; the data stays for restart(). */
  kill(): Promise<void>
  /** Starts it again on the same port and data folder (after kill, or while it runs). */
  restart(): Promise<void>
  /** SIGSTOP: it keeps its connections and answers nothing (a hung server); thaw() lets it go on. */
  freeze(): void
  thaw(): void
}

// azurite's well-known development account (public, in Microsoft's documentation).
export const AZURITE_ACCOUNT = 'devstoreaccount1'
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

const BINARY = fileURLToPath(new URL('../../node_modules/.bin/azurite-blob', import.meta.url))
const START_TIMEOUT_MS = 60_000

export async function startAzurite(options: { container?: string; dir?: string } = {}): Promise<Azurite> {
  if (!existsSync(BINARY)) throw new Error('azurite is not installed; install it with: npm install --save-dev azurite@3.35.0 (the Azure tests run against it)')
  const container = options.container ?? 'backups'
  const scratch = await tempDir('lifeboat-azurite-')
  let child: ChildProcess | undefined
  let port = 0

  async function start(): Promise<void> {
    // Started directly, not through npx (which leaves a child behind); both flags are required (test-infra.md §2):
    // the SDK's API version is newer than azurite's, and telemetry would try to reach an outside host.
    const process_ = spawn(
      BINARY,
      ['--blobHost', '127.0.0.1', '--blobPort', String(port), '--location', join(scratch.path, 'data'), '--silent', '--skipApiVersionCheck', '--disableTelemetry'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    child = process_
    let output = ''
    const bound = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`azurite did not listen within ${START_TIMEOUT_MS / 1000} s: ${output.trim()}`)), START_TIMEOUT_MS)
      const collect = (d: Buffer) => {
        output += d.toString()
        const match = /successfully listens on http:\/\/127\.0\.0\.1:(\d+)/.exec(output)
        if (match !== null) {
          clearTimeout(timer)
          resolve(Number(match[1]))
        }
      }
      process_.stdout!.on('data', collect)
      process_.stderr!.on('data', collect)
      process_.once('error', error => {
        clearTimeout(timer)
        reject(error)
      })
      process_.once('exit', code => {
        clearTimeout(timer)
        reject(new Error(`azurite exited (${code}) before listening: ${output.trim()}`))
      })
    })
    port = bound
    const service = new BlobServiceClient(`http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY))
    await service.getContainerClient(container).createIfNotExists()
  }

  async function end(signal: NodeJS.Signals): Promise<void> {
    const running = child
    child = undefined
    await endProcess(running, signal)
  }

  await start()
  const urlFor = (dir: string, other = container) => `azurite+http://${AZURITE_ACCOUNT}:${encodeURIComponent(AZURITE_KEY)}@127.0.0.1:${port}/${other}/${dir}`
  return {
    get url() {
      return urlFor(options.dir ?? 'lifeboat')
    },
    get port() {
      return port
    },
    container,
    urlFor,
    async stop() {
      await end('SIGTERM')
      await scratch.cleanup()
    },
    kill: () => end('SIGKILL'),
    freeze: () => void child?.kill('SIGSTOP'),
    thaw: () => void child?.kill('SIGCONT'),
    async restart() {
      await end('SIGTERM')
      await start()
    },
  }
}

/** The bare Azure backend of an azure or azurite URL (no decorators), labelled with the URL redacted. */
export function azureBackendOf(url: string, options: { requestTimeoutMs?: number } = {}): AzureBackend {
  const remote = parseRemoteUrl(url)
  if (remote.type !== 'azurite' && remote.type !== 'azure') throw new Error(`${redactRemoteUrl(url)} is not an Azure remote`)
  return new AzureBackend(remote, redactRemoteUrl(url), options)
}
