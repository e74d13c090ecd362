// A VM import as XAPI runs it, for restore and disaster recovery: XAPI creates the VM as soon as it has read
// ova.xml, long before the upload resolves, and that VM is what a failed or cancelled import must remove.
import { destroyVmAndDisks, type PoolConnection, type XapiRecord } from '../xapi/index.ts'

/** How long XAPI gets to remove the VM of an import that failed before it is destroyed by hand. */
const IMPORT_CLEANUP_MS = 30_000

export interface ImportWatch {
  /** For importVmXva: the import's XAPI task, which the VM it creates carries in current_operations. */
  onTask: (taskRef: string) => void
  /** The import's VM, once it appeared in the cache. */
  seen(): string | undefined
  stop(): void
}

function importTasks(vm: XapiRecord): string[] {
  return Object.entries((vm.current_operations ?? {}) as Record<string, string>).filter(([, operation]) => operation === 'import').map(([task]) => task)
}

/**
 * Watches for the VM of one import (found by its task, so another import on the same pool is never taken
 * for it); `onVm` runs once when it appears.
 */
export function watchImport(conn: PoolConnection, onVm?: (vmRef: string) => void): ImportWatch {
  const controller = new AbortController()
  let taskRef: string | undefined
  let seen: string | undefined
  conn.waitFor(() => (taskRef === undefined ? undefined : conn.all('VM').find(vm => importTasks(vm).includes(taskRef!))), { signal: controller.signal, what: 'the imported VM' })
    .then(vm => {
      seen = vm.$ref
      onVm?.(vm.$ref)
    }, () => {})
  return { onTask: ref => void (taskRef = ref), seen: () => seen, stop: () => controller.abort() }
}

/** Cancels the import's XAPI task, lets XAPI remove its VM, and destroys it if it is still there. */
export async function discardImport(conn: PoolConnection, vmRef: string): Promise<void> {
  const vm = conn.byRef(vmRef)
  if (vm !== undefined) for (const taskRef of importTasks(vm)) await conn.call('task.cancel', taskRef).catch(() => {})
  await conn.waitFor(() => {
    const current = conn.byRef(vmRef)
    return current === undefined || importTasks(current).length === 0 ? true : undefined
  }, { timeoutMs: IMPORT_CLEANUP_MS, what: 'the failed import to end' }).catch(() => {})
  await destroyVmAndDisks(conn, vmRef)
}
