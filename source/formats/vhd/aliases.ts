// XO's VHD aliases: a small text file named `*.alias.vhd` holding the path, relative to itself, of the
// VhdDirectory (or file) it stands for. An alias never points at another alias.
import { dirname, isAbsolute, join, relative } from 'node:path'
import { LifeboatError, errorCode } from '../../util/errors.ts'
import type { FileSystemAccess } from './fileSystem.ts'

/** XO's ALIAS_MAX_PATH_LENGTH. */
export const VHD_ALIAS_MAX_LENGTH = 1024

export function isVhdAlias(path: string): boolean {
  return path.endsWith('.alias.vhd')
}

/** The path the alias points at, resolved relative to the alias's folder. */
export async function readVhdAlias(fs: FileSystemAccess, path: string): Promise<string> {
  let text: string
  try {
    const file = await fs.open(path, 'r')
    try {
      const size = await file.size()
      // Checked before reading: a misnamed VHD file can be gigabytes.
      if (size > VHD_ALIAS_MAX_LENGTH) throw badAlias(path, `holds ${size} bytes, more than the ${VHD_ALIAS_MAX_LENGTH} of an alias; it is not an alias`)
      const buffer = Buffer.alloc(size)
      await file.read(buffer, 0)
      text = buffer.toString('utf8').trim()
    } finally {
      await file.close()
    }
  } catch (error) {
    if (errorCode(error) === 'ENOENT') throw new LifeboatError('FILE_NOT_FOUND', `The alias ${path} does not exist; check the path.`, { cause: error, data: { path } })
    throw error
  }
  if (text === '') throw badAlias(path, 'is empty')
  if (/[\u0000-\u001f]/.test(text)) throw badAlias(path, 'holds control characters, not a path')
  if (isAbsolute(text)) throw badAlias(path, 'holds an absolute path where XO writes a relative one')
  if (isVhdAlias(text)) throw new LifeboatError('VHD_ALIAS_TO_ALIAS', `The alias ${path} points at another alias (${text}), which XO forbids; point it at the VhdDirectory itself.`, { data: { path } })
  return join(dirname(path), text)
}

/** Writes `aliasPath` pointing at `targetPath` (both as the file system names them); the alias holds the relative path. */
export async function writeVhdAlias(fs: FileSystemAccess, aliasPath: string, targetPath: string): Promise<void> {
  if (!isVhdAlias(aliasPath)) throw badAlias(aliasPath, 'must be named *.alias.vhd')
  if (isVhdAlias(targetPath)) throw new LifeboatError('VHD_ALIAS_TO_ALIAS', `The alias ${aliasPath} cannot point at another alias (${targetPath}).`, { data: { path: aliasPath } })
  const text = relative(dirname(aliasPath), targetPath)
  if (Buffer.byteLength(text) > VHD_ALIAS_MAX_LENGTH) throw badAlias(aliasPath, `would hold a path of ${Buffer.byteLength(text)} bytes, more than ${VHD_ALIAS_MAX_LENGTH}`)
  await fs.writeFile(aliasPath, text)
}

function badAlias(path: string, what: string): LifeboatError {
  return new LifeboatError('VHD_BAD_ALIAS', `The VHD alias ${path} ${what}; remove it or point it at the VhdDirectory again.`, { data: { path } })
}
