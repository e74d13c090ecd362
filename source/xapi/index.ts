// The pool side of Lifeboat: connections over the real xen-api client, VM and disk operations, and
// the HTTP streams to and from XAPI, each within the pool's shared concurrency limits.
export { PoolConnection, raceAbort, type PoolCredentials, type ConnectOptions, type XapiRecord } from './connection.ts'
export { wrapXapiError, xapiError } from './errors.ts'
export { Slots, PoolLimits, PoolLimitsRegistry, DEFAULT_POOL_LIMITS, SLOT_KINDS, type SlotKind, type SlotGate, type UpstreamSlot, type PoolGate, type SlotHolder, type SlotLease, type SlotProgress, type TargetProgress, type PoolLimitSettings } from './slots.ts'
export * from './vm.ts'
export * from './transfer.ts'
