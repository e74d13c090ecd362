// ova.xml, the first entry of an XVA: an XML-RPC struct with the exporting host's `version` and the exported
// `objects` (VM, VBDs, VDIs… each with its `Ref:N` id and its record, refs rewritten to those ids).
import { LifeboatError } from '../../util/errors.ts'
import { encodeXmlRpcValue, parseXmlRpcValue } from '../xmlrpc.ts'

export interface OvaXml {
  version: Record<string, string | number>
  objects: Array<{ class: string; id: string; snapshot: Record<string, unknown> }>
}

export function renderOvaXml(ova: OvaXml): string {
  return encodeXmlRpcValue({ version: ova.version, objects: ova.objects })
}

export function parseOvaXml(xml: string): OvaXml {
  let value: unknown
  try {
    value = parseXmlRpcValue(xml)
  } catch (error) {
    throw badOva(error instanceof Error ? error.message : String(error), error)
  }
  if (!isStruct(value) || !isStruct(value.version) || !Array.isArray(value.objects)) throw badOva('it is not a struct with "version" and "objects"')
  const version: Record<string, string | number> = {}
  for (const [key, item] of Object.entries(value.version)) {
    if (typeof item !== 'string' && typeof item !== 'number') throw badOva(`version.${key} is neither a string nor a number`)
    version[key] = item
  }
  const objects = value.objects.map((object, index) => {
    if (!isStruct(object) || typeof object.class !== 'string' || typeof object.id !== 'string' || !isStruct(object.snapshot)) {
      throw badOva(`object ${index} lacks a class, an id or a snapshot record`)
    }
    return { class: object.class, id: object.id, snapshot: object.snapshot }
  })
  return { version, objects }
}

/** The virtual size of each exported VDI by its id, to bound the chunks that claim to belong to it. */
export function vdiSizes(ova: OvaXml): Map<string, number> {
  const sizes = new Map<string, number>()
  for (const object of ova.objects) {
    if (object.class !== 'VDI') continue
    const size = Number(object.snapshot.virtual_size)
    if (Number.isSafeInteger(size) && size >= 0) sizes.set(object.id, size)
  }
  return sizes
}

function isStruct(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date) && !Buffer.isBuffer(value)
}

function badOva(detail: string, cause?: unknown): LifeboatError {
  return new LifeboatError('XVA_BAD_OVA_XML', `The XVA's ova.xml is invalid: ${detail}. The file is damaged or was not written by XAPI or a compatible tool.`, { cause })
}
