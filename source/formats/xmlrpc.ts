// XML-RPC values the way XAPI writes them: ova.xml in XVA exports, task results, the XML-RPC endpoint.
// XAPI quirks kept: int64 as a plain `<value>123</value>` string, untyped `<value>` text is a string.
import { LifeboatError } from '../util/errors.ts'

/** Deep enough for any XAPI record; shallow enough that hostile input cannot exhaust the stack. */
const MAX_DEPTH = 64

export function encodeXmlRpcValue(value: unknown): string {
  return encodeValue(value, 0)
}

export function parseXmlRpcValue(xml: string): unknown {
  const cursor = new Cursor(xml)
  cursor.skipMisc()
  const value = parseValue(cursor, 0)
  cursor.skipMisc()
  cursor.expectEnd()
  return value
}

/** A `<methodCall>`, as the xen-api client sends it over the XML-RPC transport. */
export function parseXmlRpcCall(xml: string): { method: string; params: unknown[] } {
  const cursor = new Cursor(xml)
  cursor.skipMisc()
  cursor.expectOpen('methodCall')
  cursor.skipMisc()
  cursor.expectOpen('methodName')
  const method = cursor.text().trim()
  cursor.expectClose('methodName')
  cursor.skipMisc()
  const params: unknown[] = []
  if (!cursor.atClose('methodCall')) {
    if (cursor.expectOpen('params')) {
      for (cursor.skipMisc(); !cursor.atClose('params'); cursor.skipMisc()) {
        cursor.expectOpen('param')
        cursor.skipMisc()
        params.push(parseValue(cursor, 1))
        cursor.skipMisc()
        cursor.expectClose('param')
      }
      cursor.expectClose('params')
    }
    cursor.skipMisc()
  }
  cursor.expectClose('methodCall')
  cursor.skipMisc()
  cursor.expectEnd()
  if (method === '') throw badXml('the method name is empty')
  return { method, params }
}

/** A successful `<methodResponse>`; XAPI reports its own failures inside the value (`Status: 'Failure'`). */
export function encodeXmlRpcResponse(value: unknown): string {
  return `<?xml version="1.0"?><methodResponse><params><param>${encodeXmlRpcValue(value)}</param></params></methodResponse>`
}

function encodeValue(value: unknown, depth: number): string {
  if (depth > MAX_DEPTH) throw tooDeep()
  if (value === null || value === undefined) return '<value><nil/></value>'
  switch (typeof value) {
    case 'string':
      return `<value>${escapeText(value)}</value>`
    case 'boolean':
      return `<value><boolean>${value ? 1 : 0}</boolean></value>`
    case 'bigint':
      return `<value>${value}</value>`
    case 'number':
      if (!Number.isFinite(value)) throw badValue(`the number ${value} has no XML-RPC form`)
      return Number.isSafeInteger(value) ? `<value>${value === 0 ? 0 : value}</value>` : `<value><double>${value}</double></value>`
  }
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw badValue('an invalid date has no XML-RPC form')
    return `<value><dateTime.iso8601>${formatDate(value)}</dateTime.iso8601></value>`
  }
  if (value instanceof Uint8Array) return `<value><base64>${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')}</base64></value>`
  if (Array.isArray(value)) return `<value><array><data>${value.map(item => encodeValue(item, depth + 1)).join('')}</data></array></value>`
  if (typeof value === 'object') {
    const members = Object.entries(value)
      .filter(([, member]) => member !== undefined)
      .map(([name, member]) => `<member><name>${escapeText(name)}</name>${encodeValue(member, depth + 1)}</member>`)
    return `<value><struct>${members.join('')}</struct></value>`
  }
  throw badValue(`a ${typeof value} has no XML-RPC form`)
}

/** XAPI's form, `20230718T13:15:49Z` (UTC, no separators in the date, no fraction). */
function formatDate(date: Date): string {
  const iso = date.toISOString()
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 19)}Z`
}

const DATE = /^(\d{4})-?(\d{2})-?(\d{2})T(\d{2}):?(\d{2}):?(\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/

function parseDate(text: string): Date {
  const match = DATE.exec(text.trim())
  if (match === null) throw badValue(`"${text.slice(0, 40)}" is not an XML-RPC date`)
  const [, year, month, day, hour, minute, second, fraction = '', zone = 'Z'] = match
  const offset = zone === 'Z' ? 'Z' : `${zone.slice(0, 3)}:${zone.slice(-2)}`
  const date = new Date(`${year}-${month}-${day}T${hour}:${minute}:${second}${fraction.slice(0, 4)}${offset}`)
  if (Number.isNaN(date.getTime())) throw badValue(`"${text.slice(0, 40)}" is not a valid date`)
  return date
}

function parseValue(cursor: Cursor, depth: number): unknown {
  if (depth > MAX_DEPTH) throw tooDeep()
  if (!cursor.expectOpen('value')) return ''
  const leading = cursor.text()
  if (cursor.atClose('value')) {
    cursor.expectClose('value')
    return leading
  }
  if (!isXmlSpace(leading)) throw badXml('text is mixed with a typed value')
  const { name, selfClosing } = cursor.openTag()
  const content = selfClosing ? '' : cursor.text()
  let value: unknown
  switch (name) {
    case 'string':
      value = content
      break
    case 'int':
    case 'i4':
    case 'i8': {
      const text = content.trim()
      if (!/^[+-]?\d{1,20}$/.test(text)) throw badValue(`"${text.slice(0, 40)}" is not an integer`)
      const number = Number(text)
      value = Number.isSafeInteger(number) ? number : text
      break
    }
    case 'double': {
      const number = Number(content.trim())
      if (content.trim() === '' || !Number.isFinite(number)) throw badValue(`"${content.trim().slice(0, 40)}" is not a number`)
      value = number
      break
    }
    case 'boolean': {
      const text = content.trim()
      if (text !== '0' && text !== '1') throw badValue(`"${text.slice(0, 40)}" is not an XML-RPC boolean (0 or 1)`)
      value = text === '1'
      break
    }
    case 'base64':
      if (!/^[A-Za-z0-9+/=\s]*$/.test(content)) throw badValue('the base64 value holds characters outside base64')
      value = Buffer.from(content, 'base64')
      break
    case 'dateTime.iso8601':
      value = parseDate(content)
      break
    case 'nil':
      value = null
      break
    case 'struct':
      if (!isXmlSpace(content)) throw badXml('text inside <struct>')
      value = selfClosing ? {} : parseStruct(cursor, depth)
      break
    case 'array':
      if (!isXmlSpace(content)) throw badXml('text inside <array>')
      value = selfClosing ? [] : parseArray(cursor, depth)
      break
    default:
      throw badXml(`<${name.slice(0, 40)}> is not an XML-RPC type`)
  }
  if (!selfClosing) cursor.expectClose(name)
  cursor.skipMisc()
  cursor.expectClose('value')
  return value
}

function parseStruct(cursor: Cursor, depth: number): Record<string, unknown> {
  const struct: Record<string, unknown> = {}
  for (cursor.skipMisc(); !cursor.atClose('struct'); cursor.skipMisc()) {
    cursor.expectOpen('member')
    cursor.skipMisc()
    const name = cursor.expectOpen('name') ? cursor.text() : ''
    if (!cursor.lastWasSelfClosing) cursor.expectClose('name')
    cursor.skipMisc()
    // defineProperty: a member called __proto__ must stay a member, never a prototype.
    Object.defineProperty(struct, name, { value: parseValue(cursor, depth + 1), enumerable: true, writable: true, configurable: true })
    cursor.skipMisc()
    cursor.expectClose('member')
  }
  return struct
}

function parseArray(cursor: Cursor, depth: number): unknown[] {
  const items: unknown[] = []
  cursor.skipMisc()
  if (cursor.expectOpen('data')) {
    for (cursor.skipMisc(); !cursor.atClose('data'); cursor.skipMisc()) items.push(parseValue(cursor, depth + 1))
    cursor.expectClose('data')
  }
  cursor.skipMisc()
  return items
}

function isXmlSpace(text: string): boolean {
  return /^[ \t\r\n]*$/.test(text)
}

function escapeText(text: string): string {
  // Control characters as references: XML 1.0 forbids most of them raw, and parsers fold a raw \r.
  return text.replace(/[&<>]|[\u0000-\u0008\u000b-\u001f]/g, char =>
    char === '&' ? '&amp;' : char === '<' ? '&lt;' : char === '>' ? '&gt;' : `&#${char.charCodeAt(0)};`,
  )
}

const NAMED_ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" }

function decodeEntities(text: string): string {
  return text.replace(/&([^;&<]{0,12});?/g, (whole, entity: string) => {
    if (!whole.endsWith(';')) throw badXml('a bare "&" (it must be written &amp;)')
    const named = NAMED_ENTITIES[entity]
    if (named !== undefined) return named
    const match = /^#(?:x([0-9a-fA-F]{1,6})|(\d{1,7}))$/.exec(entity)
    const code = match === null ? NaN : match[1] !== undefined ? parseInt(match[1], 16) : Number(match[2])
    if (!(code >= 0 && code <= 0x10ffff)) throw badXml(`unknown entity &${entity.slice(0, 12)};`)
    return String.fromCodePoint(code)
  })
}

/** A forward-only reader over the XML text; every method throws a coded error on anything unexpected. */
class Cursor {
  private position = 0
  lastWasSelfClosing = false

  constructor(private readonly xml: string) {}

  /** Whitespace, comments and processing instructions (`<?xml …?>`) between tags. */
  skipMisc(): void {
    for (;;) {
      while (this.position < this.xml.length && isXmlSpace(this.xml[this.position]!)) this.position++
      if (this.xml.startsWith('<?', this.position)) this.skipPast('?>')
      else if (this.xml.startsWith('<!--', this.position)) this.skipPast('-->')
      else return
    }
  }

  expectEnd(): void {
    if (this.position !== this.xml.length) throw badXml('unexpected content after the value')
  }

  /** Reads `<name …>` or `<name …/>`; not a closing tag. */
  openTag(): { name: string; selfClosing: boolean } {
    const match = /^<([A-Za-z_][\w.:-]*)(\s+[^<>]*?)?\s*(\/?)>/.exec(this.xml.slice(this.position, this.position + 256))
    if (match === null) throw badXml(`a tag was expected at character ${this.position}`)
    this.position += match[0].length
    this.lastWasSelfClosing = match[3] === '/'
    return { name: match[1]!, selfClosing: this.lastWasSelfClosing }
  }

  /** Opens the named tag; false when it was self-closing (empty). */
  expectOpen(name: string): boolean {
    const tag = this.openTag()
    if (tag.name !== name) throw badXml(`<${name}> was expected, found <${tag.name.slice(0, 40)}>`)
    return !tag.selfClosing
  }

  atClose(name: string): boolean {
    return this.xml.startsWith(`</${name}`, this.position)
  }

  expectClose(name: string): void {
    const match = /^<\/([A-Za-z_][\w.:-]*)\s*>/.exec(this.xml.slice(this.position, this.position + 256))
    if (match === null || match[1] !== name) throw badXml(`</${name}> was expected at character ${this.position}`)
    this.position += match[0].length
  }

  /** Character data up to the next tag, entities decoded, CDATA sections kept verbatim. */
  text(): string {
    let text = ''
    for (;;) {
      const next = this.xml.indexOf('<', this.position)
      if (next < 0) throw badXml('the document ends inside a value')
      text += decodeEntities(this.xml.slice(this.position, next))
      this.position = next
      if (this.xml.startsWith('<![CDATA[', next)) {
        const end = this.xml.indexOf(']]>', next)
        if (end < 0) throw badXml('an unterminated CDATA section')
        text += this.xml.slice(next + 9, end)
        this.position = end + 3
      } else if (this.xml.startsWith('<!--', next)) this.skipPast('-->')
      else return text
    }
  }

  private skipPast(terminator: string): void {
    const end = this.xml.indexOf(terminator, this.position)
    if (end < 0) throw badXml(`an unterminated "${this.xml.slice(this.position, this.position + 4)}"`)
    this.position = end + terminator.length
  }
}

function badXml(detail: string): LifeboatError {
  return new LifeboatError('XMLRPC_BAD_XML', `The XML-RPC document is malformed: ${detail}. The sender is not a compatible XAPI peer or the data is damaged.`)
}

function badValue(detail: string): LifeboatError {
  return new LifeboatError('XMLRPC_BAD_VALUE', `An XML-RPC value is invalid: ${detail}.`)
}

function tooDeep(): LifeboatError {
  return new LifeboatError('XMLRPC_TOO_DEEP', `The XML-RPC value is nested more than ${MAX_DEPTH} levels deep; no XAPI object is, so the data is refused.`)
}
