// Types for the parts of the `xen-api` client (4.7.6, untyped JavaScript) that Lifeboat uses.
declare module 'xen-api' {
  import type { EventEmitter } from 'node:events'
  import type { Readable } from 'node:stream'

  export interface XapiRecord {
    readonly $ref: string
    readonly $id: string
    readonly $type: string
    readonly uuid: string
    [field: string]: unknown
  }

  export interface XapiObjectCollection {
    all: Record<string, XapiRecord>
    on(event: 'add' | 'update' | 'remove', listener: (objects: Record<string, XapiRecord>) => void): void
    removeListener(event: 'add' | 'update' | 'remove', listener: (objects: Record<string, XapiRecord>) => void): void
  }

  /** A cancel token of promise-toolbox (AbortSignal-like); built with CancelToken.from(signal). */
  export type CancelTokenLike = object

  export interface ResourceResponse {
    statusCode: number
    headers: Record<string, string | string[] | undefined>
    body: Readable & { destroy(error?: Error): void }
    task?: Promise<unknown>
  }

  export interface Xapi extends EventEmitter {
    readonly status: 'connected' | 'connecting' | 'disconnected'
    readonly sessionId: string | undefined
    readonly pool: XapiRecord | undefined
    readonly objects: XapiObjectCollection
    readonly objectsFetched: Promise<void>
    connect(): Promise<void>
    disconnect(): Promise<void>
    call(method: string, ...args: unknown[]): Promise<unknown>
    callAsync(method: string, ...args: unknown[]): Promise<unknown>
    callAsync(token: CancelTokenLike, method: string, ...args: unknown[]): Promise<unknown>
    getObject(idOrUuidOrRef: string, defaultValue?: unknown): XapiRecord
    getObjectByRef(ref: string, defaultValue?: unknown): XapiRecord
    getObjectByUuid(uuid: string, defaultValue?: unknown): XapiRecord
    getRecord(type: string, ref: string): Promise<XapiRecord>
    getAllRecords(type: string): Promise<XapiRecord[]>
    barrier(ref?: string): Promise<void>
    watchTask(ref: string): Promise<unknown>
    getResource(pathname: string, options?: ResourceOptions): Promise<ResourceResponse>
    getResource(token: CancelTokenLike, pathname: string, options?: ResourceOptions): Promise<ResourceResponse>
    putResource(body: Readable & { length?: number }, pathname: string, options?: ResourceOptions): Promise<unknown>
    putResource(token: CancelTokenLike, body: Readable & { length?: number }, pathname: string, options?: ResourceOptions): Promise<unknown>
  }

  export interface ResourceOptions {
    query?: Record<string, string>
    task?: boolean | string
  }

  export interface XapiOptions {
    url: string
    transport?: 'auto' | 'json-rpc' | 'xml-rpc'
    auth?: { user: string; password: string }
    allowUnauthorized?: boolean
    watchEvents?: boolean | string[]
    callTimeout?: number
    httpInactivityTimeout?: number
    debounce?: number
    eventPollDelay?: number
  }

  export function createClient(options: XapiOptions): Xapi
  export const Ref: { EMPTY: string; isNotEmpty(value: unknown): boolean; is(value: unknown): boolean }
}

declare module 'xen-api/_getTaskResult.mjs' {
  import type { XapiRecord } from 'xen-api'
  /** A finished task's outcome as xen-api's watchTask gives it (parsed result, or the XAPI error); undefined while pending. */
  export default function getTaskResult(task: Record<string, unknown> | XapiRecord): Promise<unknown> | undefined
}

declare module 'promise-toolbox' {
  export class CancelToken {
    static from(signal: AbortSignal): CancelToken
    static source(): { token: CancelToken; cancel(reason?: unknown): void }
    readonly requested: boolean
  }
  export class Cancel extends Error {}
}
