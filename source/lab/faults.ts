// Injected failures (xapi.md §4, §6.7): rules matched against API calls and HTTP transfers, and the log of every fault
// that fired, so a test can assert how a client reacted to exactly what happened.
import { randomUUID } from 'node:crypto'
import { z } from 'zod'
import { ApiError } from './errors.ts'
import { delay, type Toolstack } from './toolstack.ts'

const byteCount = z.number().int().nonnegative()
const milliseconds = z.number().nonnegative().max(24 * 3600_000)

export const faultActionSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('error'), code: z.string().regex(/^[A-Z0-9_]+$/), params: z.array(z.string()).optional() }),
  z.object({ type: z.literal('delay'), ms: milliseconds }),
  z.object({ type: z.literal('hang') }),
  z.object({ type: z.literal('sessionInvalidate') }),
  /** Transfers: the body ends after `afterBytes` with a FIN (clean close) or a RST. */
  z.object({ type: z.literal('truncate'), afterBytes: byteCount, mode: z.enum(['fin', 'rst']) }),
  /** Transfers: no byte for `ms` after `afterBytes`. */
  z.object({ type: z.literal('stall'), ms: milliseconds, afterBytes: byteCount.optional() }),
  /** Transfers: XAPI bug xen-api#4603, a 200 whose body is an HTTP 500 page with SR_BACKEND_FAILURE_46. */
  z.object({ type: z.literal('embedded500') }),
])
export type FaultAction = z.infer<typeof faultActionSchema>

export const faultRuleSchema = z.object({
  /** `method` matches with or without the `Async.` prefix; `endpoint` is a transfer path like `/export_raw_vdi/`; `uuid` the VDI or VM. */
  match: z.object({ method: z.string().optional(), endpoint: z.string().optional(), uuid: z.string().optional() }),
  /** How many times the rule fires before it is spent (0 = forever). */
  times: z.number().int().nonnegative().optional(),
  action: faultActionSchema,
})
export type FaultRuleRequest = z.infer<typeof faultRuleSchema>
export type FaultRule = FaultRuleRequest & { id: string; times: number }

export interface FaultLogEntry { at: string; pool: string; fault: string; detail: Record<string, unknown> }

export class FaultBook {
  private rules: FaultRule[] = []
  readonly entries: FaultLogEntry[] = []

  add(rule: FaultRuleRequest): FaultRule {
    const full: FaultRule = { ...rule, id: randomUUID(), times: rule.times ?? 1 }
    this.rules.push(full)
    return full
  }

  list(): FaultRule[] {
    return [...this.rules]
  }

  clear(): void {
    this.rules = []
  }

  log(xapi: Toolstack, fault: string, detail: Record<string, unknown>): void {
    this.entries.push({ at: new Date().toISOString(), pool: xapi.name, fault, detail })
  }

  /** Applies the first matching call rule: throws the injected error, waits, or never returns. */
  async beforeCall(xapi: Toolstack, method: string, args: unknown[]): Promise<void> {
    const plain = method.replace(/^Async\./, '')
    const rule = this.take(candidate => candidate.match.method === plain || candidate.match.method === method)
    if (rule === undefined) return
    this.log(xapi, rule.action.type, { method, rule: rule.id, args: args.filter(arg => typeof arg === 'string').slice(0, 3) })
    switch (rule.action.type) {
      case 'error':
        throw new ApiError(rule.action.code, rule.action.params ?? [])
      case 'delay':
        return delay(rule.action.ms)
      case 'hang':
        return new Promise(() => {})
      case 'sessionInvalidate':
        xapi.sessions.clear()
        throw new ApiError('SESSION_INVALID', [String(args[0] ?? '')])
      default:
        return
    }
  }

  /** The transfer fault for this endpoint and object, if any (spent as it is returned). */
  forTransfer(xapi: Toolstack, endpoint: string, uuid: string): FaultAction | undefined {
    const rule = this.take(candidate => candidate.match.endpoint === endpoint && (candidate.match.uuid === undefined || candidate.match.uuid === uuid))
    if (rule !== undefined) this.log(xapi, rule.action.type, { endpoint, uuid, rule: rule.id, action: rule.action })
    return rule?.action
  }

  private take(predicate: (rule: FaultRule) => boolean): FaultRule | undefined {
    const rule = this.rules.find(predicate)
    if (rule === undefined) return undefined
    if (rule.times > 0 && --rule.times === 0) this.rules = this.rules.filter(other => other !== rule)
    return rule
  }
}
