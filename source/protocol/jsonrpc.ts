// The daemon's wire format: JSON-RPC 2.0, one JSON object per line over a Unix socket. This file is the
// envelope (requests, responses, notifications, error codes) and the line framing, shared by both ends.
import { z } from 'zod'

/** A line longer than this is refused (and the connection resynchronises at the next newline). */
export const MAX_LINE_BYTES = 4 * 1024 * 1024

export const RPC_ERRORS = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  /** A Lifeboat error: `data.code` holds its code (REMOTE_FULL, XAPI_SR_BACKEND_FAILURE_44…). */
  APPLICATION_ERROR: -32000,
} as const

const id = z.union([z.string().max(200), z.number().int()])

export const requestSchema = z.object({
  jsonrpc: z.literal('2.0'),
  id: id.optional(),
  method: z.string().min(1).max(200),
  params: z.unknown().optional(),
})
export type RpcRequest = z.infer<typeof requestSchema>

export const errorObjectSchema = z.object({
  code: z.number().int(),
  message: z.string(),
  data: z.object({ code: z.string(), data: z.unknown().optional() }).passthrough().optional(),
})
export type RpcErrorObject = z.infer<typeof errorObjectSchema>

export const responseSchema = z.union([
  z.object({ jsonrpc: z.literal('2.0'), id: id.nullable(), result: z.unknown() }),
  z.object({ jsonrpc: z.literal('2.0'), id: id.nullable(), error: errorObjectSchema }),
])
export type RpcResponse = z.infer<typeof responseSchema>

export const notificationSchema = z.object({ jsonrpc: z.literal('2.0'), method: z.string(), params: z.unknown().optional() })
export type RpcNotification = z.infer<typeof notificationSchema>

/**
 * Splits a byte stream into lines without ever holding more than MAX_LINE_BYTES of one line:
 * an over-long line is reported once and skipped up to its newline.
 */
export class LineSplitter {
  #pending: Buffer[] = []
  #pendingBytes = 0
  #skipping = false

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly onOverflow: () => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl)
      start = nl + 1
      if (this.#skipping) {
        this.#skipping = false
        continue
      }
      if (this.#pendingBytes + piece.length > MAX_LINE_BYTES) {
        this.#reset()
        this.onOverflow()
        continue
      }
      const line = this.#pending.length === 0 ? piece.toString('utf8') : Buffer.concat([...this.#pending, piece]).toString('utf8')
      this.#reset()
      if (line.trim() !== '') this.onLine(line)
    }
    if (start < chunk.length && !this.#skipping) {
      const rest = chunk.subarray(start)
      if (this.#pendingBytes + rest.length > MAX_LINE_BYTES) {
        this.#reset()
        this.#skipping = true
        this.onOverflow()
      } else {
        this.#pending.push(Buffer.from(rest))
        this.#pendingBytes += rest.length
      }
    }
  }

  #reset(): void {
    this.#pending = []
    this.#pendingBytes = 0
  }
}

export function encodeMessage(message: RpcRequest | RpcResponse | RpcNotification): string {
  return JSON.stringify(message) + '\n'
}
