// The daemon's wire format: JSON-RPC 2.0, one JSON object per line over a Unix socket. This file is the
// envelope (requests, responses, notifications, error codes) and the line framing, shared by both ends.
import { z } from 'zod'

/** A line longer than this is refused (and the connection resynchronises at the next newline). */
export const MAX_LINE_BYTES = 4 * 1024 * 1024
/** Arrays and objects nested deeper than this are refused before parsing (no request needs a tenth of it). */
export const MAX_NESTING = 64

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

/** Bytes held by the unfinished lines of several splitters together (the daemon's connections). */
export class LineBudget {
  held = 0
  constructor(readonly limit: number) {}
}

/** The start of an over-long line: enough to read the id of a request written id first (as our client does). */
const ID_PREFIX_BYTES = 512

/**
 * Splits a byte stream into lines without ever holding more than MAX_LINE_BYTES of one line:
 * an over-long line is reported once (with its first bytes, to find its id) and skipped up to its newline.
 * With a shared budget, a line that would take the total above it is reported as `onBudget` instead.
 */
export class LineSplitter {
  #pending: Buffer[] = []
  #pendingBytes = 0
  #skipping = false

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly onOverflow: (start: string) => void,
    private readonly budget?: { shared: LineBudget; onExceeded: (start: string) => void },
  ) {}

  /** Lets go of the unfinished line (the connection closed). */
  release(): void {
    this.#reset()
  }

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
        const start = this.#start(piece)
        this.#reset()
        this.onOverflow(start)
        continue
      }
      const line = this.#pending.length === 0 ? piece.toString('utf8') : Buffer.concat([...this.#pending, piece]).toString('utf8')
      this.#reset()
      if (line.trim() !== '') this.onLine(line)
    }
    if (start < chunk.length && !this.#skipping) {
      const rest = chunk.subarray(start)
      if (this.#pendingBytes + rest.length > MAX_LINE_BYTES) {
        const start = this.#start(rest)
        this.#reset()
        this.#skipping = true
        this.onOverflow(start)
      } else if (this.budget !== undefined && this.budget.shared.held + rest.length > this.budget.shared.limit) {
        const start = this.#start(rest)
        this.#reset()
        this.#skipping = true
        this.budget.onExceeded(start)
      } else {
        this.#pending.push(Buffer.from(rest))
        this.#pendingBytes += rest.length
        if (this.budget !== undefined) this.budget.shared.held += rest.length
      }
    }
  }

  #start(next: Buffer): string {
    return Buffer.concat([...this.#pending, next.subarray(0, ID_PREFIX_BYTES)]).subarray(0, ID_PREFIX_BYTES).toString('utf8')
  }

  #reset(): void {
    if (this.budget !== undefined) this.budget.shared.held -= this.#pendingBytes
    this.#pending = []
    this.#pendingBytes = 0
  }
}

/** The id a request line starts with (`{"jsonrpc":"2.0","id":7,…`), for answering one whose whole cannot be read. */
export function leadingId(start: string): string | number | null {
  const match = /^\s*\{\s*(?:"jsonrpc"\s*:\s*"[^"]*"\s*,\s*)?"id"\s*:\s*(-?\d{1,15}(?![\d.eE])|"[^"\\]{0,200}")/.exec(start)
  if (match === null) return null
  return match[1]!.startsWith('"') ? match[1]!.slice(1, -1) : Number(match[1])
}

/** Whether a JSON text nests arrays and objects deeper than `limit` (JSON.parse copes, the code after it may not). */
export function nestsDeeperThan(text: string, limit: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true
    } else if (c === 0x5d || c === 0x7d) depth--
  }
  return false
}

export function encodeMessage(message: RpcRequest | RpcResponse | RpcNotification): string {
  return JSON.stringify(message) + '\n'
}
