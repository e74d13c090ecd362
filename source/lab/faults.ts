// Injected failures (xapi.md §4, §6.7): rules matched against API calls and HTTP transfers, and the log of every fault
// that fired, so a test can assert how a client reacted to exactly what happened.
import { randomUUID } from 'node:crypto'
import { ApiError } from './errors.ts'
import { delay, type Toolstack } from './toolstack.ts'

export type FaultAction =
  | { type: 'error'; code: string; params?: string[] }
  | { type: 'delay'; ms: number }
  | { type: 'hang' }
  | { type: 'sessionInvalidate' }
  /** Transfers: the body ends after `afterBytes` with a FIN (clean close) or a RST. */
  | { type: 'truncate'; afterBytes: number; mode: 'fin' | 'rst' }
  /** Transfers: no byte for `ms` after `afterBytes`. */
  | { type: 'stall'; ms: number; afterBytes?: number }
  /** Transfers: XAPI bug xen-api#4603, a 200 whose body is an HTTP 500 page with SR_BACKEND_FAILURE_46. */
  | { type: 'embedded500' }

export interface FaultRule {
  id: string
  /** `method` matches with or without the `Async.` prefix; `endpoint` is a transfer path like `/export_raw_vdi/`; `uuid` the VDI or VM. */
  match: { method?: string; endpoint?: string; uuid?: string }
  /** How many times the rule fires before it is spent (0 = forever). */
  times: number
  action: FaultAction
}

export interface FaultLogEntry { at: string; pool: string; fault: string; detail: Record<string, unknown> }

export class FaultBook {
  private rules: FaultRule[] = []
  readonly entries: FaultLogEntry[] = []

  add(rule: Omit<FaultRule, 'id' | 'times'> & { times?: number }): FaultRule {
    const full: FaultRule = { id: randomUUID(), times: 1, ...rule }
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
