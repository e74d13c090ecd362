// Shared by the lab tests: a tiny lab in a temporary folder, the real xen-api client connected to it, and small waits.
import { after, before } from 'node:test'
import { createClient } from 'xen-api'
import { startLab, type Lab, type LabPool } from '../../source/lab/index.ts'
import { tempDir } from '../helpers/tools.ts'

export interface XapiClient {
  connect(): Promise<void>
  disconnect(): Promise<void>
  call(method: string, ...args: unknown[]): Promise<any>
  callAsync(method: string, ...args: unknown[]): Promise<any>
  getObject(ref: string, defaultValue?: unknown): any
  getResource(path: string, options: { query: Record<string, string>; task?: boolean | string }): Promise<any>
  putResource(body: unknown, path: string, options: { query: Record<string, string>; task?: boolean | string }): Promise<any>
  objects: { all: Record<string, any> }
  objectsFetched: Promise<void>
  sessionId: string
}

export async function startTinyLab(): Promise<{ lab: Lab; pool: LabPool; dataDir: string; cleanup: () => Promise<void> }> {
  const dir = await tempDir('lifeboat-lab-')
  const lab = await startLab({ dataDir: dir.path, fixture: 'tiny' })
  return { lab, pool: lab.pools[0]!, dataDir: dir.path, cleanup: async () => { await lab.stop(); await dir.cleanup() } }
}

export type TinyLab = Awaited<ReturnType<typeof startTinyLab>>

/** One tiny lab and a connected client shared by the tests of the current suite (node:test before/after hooks);
 *  `env` and `xapi` are valid inside tests only. */
export function useTinyLab(): { readonly env: TinyLab; readonly xapi: XapiClient } {
  let current: { env: TinyLab; xapi: XapiClient } | undefined
  before(async () => {
    const env = await startTinyLab()
    current = { env, xapi: await connect(env.pool) }
  })
  after(async () => {
    await current?.xapi.disconnect().catch(() => {})
    await current?.env.cleanup()
  })
  const started = () => {
    if (current === undefined) throw new Error('useTinyLab: the lab exists inside tests only (it starts in a before hook)')
    return current
  }
  return { get env() { return started().env }, get xapi() { return started().xapi } }
}

/** A fresh tiny lab for one test that breaks it (restarts, reboots), torn down whatever the test does. */
export async function withTinyLab(body: (lab: { env: TinyLab; xapi: XapiClient }) => Promise<void>): Promise<void> {
  const env = await startTinyLab()
  try {
    const xapi = await connect(env.pool)
    try {
      await body({ env, xapi })
    } finally {
      await xapi.disconnect().catch(() => {})
    }
  } finally {
    await env.cleanup()
  }
}

export async function connect(pool: LabPool, options: Record<string, unknown> = {}): Promise<XapiClient> {
  const xapi = createClient({ url: pool.url, auth: { user: pool.username, password: pool.password }, allowUnauthorized: true,
    watchEvents: true, debounce: 20, eventPollDelay: 200, ...options }) as unknown as XapiClient
  await xapi.connect()
  await xapi.objectsFetched
  return xapi
}

export function objectsOf(xapi: XapiClient, type: string): any[] {
  return Object.values(xapi.objects.all).filter(object => object.$type === type)
}

export function vmNamed(xapi: XapiClient, name: string): any {
  const vm = objectsOf(xapi, 'VM').find(object => object.name_label === name)
  if (vm === undefined) throw new Error(`no VM named ${name}`)
  return vm
}

/** The VM's first disk (the VDI behind its first Disk VBD). */
export function diskOf(vm: any): any {
  return vm.$VBDs.find((vbd: any) => vbd.type === 'Disk').$VDI
}

export async function waitFor<T>(probe: () => T | undefined | false, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const value = probe()
    if (value !== undefined && value !== false) return value
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  throw new Error(`timed out waiting for ${what}`)
}

export async function readAll(stream: AsyncIterable<Buffer | Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(Buffer.from(chunk))
  return Buffer.concat(chunks)
}

/** A raw JSON-RPC call, bypassing the client's retries and re-logins (to see exactly what the lab answers). */
export async function rawCall(url: string, method: string, params: unknown[]): Promise<{ status: number; contentType: string | null; body: any }> {
  const response = await fetch(`${url}/jsonrpc`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 0, method, params }) })
  return { status: response.status, contentType: response.headers.get('content-type'), body: await response.json() }
}

/** A call to the pool's /_sim control plane, as a test outside the lab's process would make it. */
export async function sim(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${url}/_sim/${path}`, { method, body: body === undefined ? undefined : JSON.stringify(body),
    headers: { 'content-type': 'application/json' } })
  return { status: response.status, body: await response.json() }
}
