// Full restore: the XVA file streamed as stored (XAPI reads gzip and zstd archives itself) into an import on
// the SR. The VM XAPI creates early is watched, so a failed or cancelled import leaves nothing behind.
import { detectCompression } from '../../formats/compression.ts'
import { resolveInVmDir } from '../../repository/index.ts'
import { importVmXva } from '../../xapi/index.ts'
import { LifeboatError, errorCode } from '../../util/errors.ts'
import { throwIfAborted } from '../../util/abort.ts'
import { discardImport, watchImport } from '../import-watch.ts'
import { applyConventions, type RestoreContext } from './conventions.ts'
import { transfer } from './transfer.ts'

const TAR_BLOCK = 512

/** Restores a full backup; resolves with the new VM's ref. */
export async function restoreFull(context: RestoreContext, xva: string): Promise<string> {
  const { handler, conn, signal } = context
  const path = resolveInVmDir(context.vmDirUuid, xva)
  const size = await checkXva(context, path)
  const watch = watchImport(conn)
  let vmRef: string | undefined
  try {
    vmRef = await transfer(context.task, { size, xva }, await handler.createReadStream(path),
      body => importVmXva(conn, body, size, context.srRef, signal, watch.onTask), signal)
    await applyConventions(conn, vmRef, context.conventions)
    throwIfAborted(signal)
    return vmRef
  } catch (error) {
    const imported = vmRef ?? watch.seen()
    if (imported !== undefined) {
      await discardImport(conn, imported).catch(discardError => context.task?.warning('the half-imported VM could not be removed; delete it by hand', { vm: imported, error: (discardError as Error).message }))
    }
    throw error
  } finally {
    watch.stop()
  }
}

/** The XVA's size, after a look at its first bytes: a compressed stream or a tar starting with ova.xml. */
async function checkXva(context: RestoreContext, path: string): Promise<number> {
  const { handler } = context
  let size: number
  try {
    size = (await handler.stat(path)).size
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw error
    throw badXva(context, path, 'the file is missing', error)
  }
  if (size < 2 * TAR_BLOCK) throw badXva(context, path, `the file has only ${size} bytes`)
  const chunks: Buffer[] = []
  for await (const chunk of await handler.createReadStream(path, { start: 0, end: TAR_BLOCK - 1 })) chunks.push(Buffer.from(chunk as Buffer))
  const head = Buffer.concat(chunks)
  if (detectCompression(head) === undefined && head.subarray(0, 8).toString('latin1') !== 'ova.xml\0') {
    throw badXva(context, path, 'it is neither a compressed archive nor a tar starting with ova.xml')
  }
  return size
}

function badXva(context: RestoreContext, path: string, detail: string, cause?: unknown): LifeboatError {
  return new LifeboatError('RESTORE_BROKEN_BACKUP', `The full backup ${path} on ${context.handler.label} cannot be restored: ${detail}. Restore another restore point, and run the repository cleaner on this VM.`, { cause })
}
