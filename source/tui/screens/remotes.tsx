// Remotes: where backups go, with state and free space; add (the type first, then that type's fields,
// the URL built from them), info (type, free space, encryption, what the backend can do, the last test),
// test (write, read, latency of a probe), remove.
import { useState } from 'react'
import { Box, Text } from 'ink'
import { useRpc, useScreenKeys, useShell } from '../shell.tsx'
import { Table, type Column } from '../components/list.tsx'
import { FilterLine } from '../components/input.tsx'
import { AddFormView, useAddForm, type Field, type FormValues } from '../components/form.tsx'
import { fit, formatBytes, wrapText } from '../format.ts'
import { formatRemoteUrl, redactRemoteUrl, remoteInfoLines, type RemoteUrl } from '../../protocol/remotes.ts'
import type { RemoteTestResult } from '../../protocol/methods.ts'
import { tone } from '../theme.ts'
import { terminalSafeLine } from '../../util/terminal-text.ts'
import { CountLine, useFilteredList } from './common.tsx'

const COLUMNS: Column[] = [
  { title: 'State', width: 7 },
  { title: 'Remote', width: 14 },
  { title: 'Type', width: 5 },
  { title: 'Free', width: 9, align: 'right' },
  { title: 'Size', width: 9, align: 'right' },
  { title: 'URL / problem', width: 0 },
]

const TYPES = ['local folder', 'NFS', 'SMB', 'S3', 'Azure Blob', 'Azurite'] as const
type FormType = (typeof TYPES)[number]

const text = (name: string, label: string, hint?: string, secret?: boolean): Field => ({ name, label, kind: 'text', ...(hint !== undefined && { hint }), ...(secret === true && { secret }) })

const SECRET_HINT = "hidden; kept only in the daemon's secrets file"
const VHD_DIRECTORY: Field = { name: 'useVhdDirectory', label: 'VhdDirectory', kind: 'toggle', hint: 'store delta disks as VhdDirectory (as XO can)' }
const ENCRYPTION: Field = text('encryptionKey', 'Encryption key', 'optional: 32 characters; encrypts the backups (keep a copy!)', true)

/** The fields of each type, after Type and Name; `required` ones must not be empty. */
const TYPE_FIELDS: Record<FormType, { fields: Field[]; required: string[] }> = {
  'local folder': { fields: [text('path', 'Folder', 'absolute, must exist: /srv/backups'), VHD_DIRECTORY, ENCRYPTION], required: ['path'] },
  NFS: {
    fields: [
      text('host', 'Host', 'the NFS server: nas.example'),
      text('port', 'Port', 'optional: else the portmapper on port 111 is asked'),
      text('path', 'Export path', 'absolute, as exported: /export/backups'),
      text('uid', 'UID', "optional: the uid the server sees; default: the daemon's own"),
      text('gid', 'GID', "optional: the gid the server sees; default: the daemon's own"),
      text('mountPort', 'MOUNT port', 'optional: else the portmapper on port 111 is asked'),
      VHD_DIRECTORY,
      ENCRYPTION,
    ],
    required: ['host', 'path'],
  },
  SMB: {
    fields: [
      text('domain', 'Domain', "optional: the user's domain; else WORKGROUP"),
      text('username', 'User', 'a user with write access to the share'),
      text('password', 'Password', SECRET_HINT, true),
      text('host', 'Host', 'nas.example, or nas.example:port when not 445'),
      text('share', 'Share', "the share's name: backups"),
      text('path', 'Sub-folder', 'optional: lifeboat/site-a'),
      VHD_DIRECTORY,
      ENCRYPTION,
    ],
    required: ['username', 'password', 'host', 'share'],
  },
  S3: {
    fields: [
      text('host', 'Endpoint', 's3.eu-west-3.amazonaws.com, or host:port'),
      { name: 'protocol', label: 'Protocol', kind: 'choice', choices: ['https', 'http'] },
      text('bucket', 'Bucket'),
      text('path', 'Folder', 'optional: lifeboat/site-a'),
      text('region', 'Region', 'optional: taken from an AWS endpoint, else us-east-1'),
      text('username', 'Access key', 'the key id: AKIA…'),
      text('password', 'Secret key', SECRET_HINT, true),
      { name: 'allowUnauthorized', label: 'Self-signed', kind: 'toggle', hint: 'accept a self-signed certificate (allowUnauthorized)' },
      ENCRYPTION,
    ],
    required: ['host', 'bucket', 'username', 'password'],
  },
  'Azure Blob': {
    fields: [text('username', 'Account'), text('password', 'Account key', SECRET_HINT, true), text('host', 'Host', 'account.blob.core.windows.net'), text('container', 'Container'), text('path', 'Folder', 'optional: lifeboat/site-a'), ENCRYPTION],
    required: ['username', 'password', 'host', 'container'],
  },
  Azurite: {
    fields: [
      text('username', 'Account', 'devstoreaccount1'),
      text('password', 'Account key', SECRET_HINT, true),
      text('host', 'Host', '127.0.0.1:10000'),
      { name: 'protocol', label: 'Protocol', kind: 'choice', choices: ['https', 'http'] },
      text('container', 'Container'),
      text('path', 'Folder', 'optional'),
      ENCRYPTION,
    ],
    required: ['username', 'password', 'host', 'container'],
  },
}

const COMMON_FIELDS: Field[] = [
  { name: 'type', label: 'Type', kind: 'choice', choices: [...TYPES], hint: '←/→ to choose; the fields below follow' },
  text('name', 'Name', 'letters, digits, . _ -'),
]

const INITIAL: FormValues = { type: 'local folder', name: '', protocol: 'https', useVhdDirectory: false, allowUnauthorized: false }

function formType(values: FormValues): FormType {
  return TYPES.includes(values.type as FormType) ? (values.type as FormType) : 'local folder'
}

function fieldsOf(values: FormValues): Field[] {
  return [...COMMON_FIELDS, ...TYPE_FIELDS[formType(values)].fields]
}

const PORT = /^\d{1,5}$/
const isPort = (text: string) => PORT.test(text) && Number(text) >= 1 && Number(text) <= 65535
const isId = (text: string) => /^\d{1,10}$/.test(text) && Number(text) <= 0xffffffff

/** What is wrong with a filled-in field, in a sentence saying what it should be; undefined when it is right. */
function wrongEntry(type: FormType, value: (name: string) => string, values: FormValues): string | undefined {
  const key = String(values.encryptionKey ?? '')
  if (type === 'NFS') {
    if (value('host').includes(':') || value('host').includes('/')) return 'Host is the name or address alone: put the port in Port.'
    if (value('port') !== '' && !isPort(value('port'))) return 'Port must be a number from 1 to 65535 (the NFS port, 2049 on most servers).'
    if (!value('path').startsWith('/')) return 'Export path must be absolute, as the server exports it: /export/backups.'
    if (value('uid') !== '' && !isId(value('uid'))) return 'UID must be a whole number from 0 to 4294967295 (as id -u shows it).'
    if (value('gid') !== '' && !isId(value('gid'))) return 'GID must be a whole number from 0 to 4294967295 (as id -g shows it).'
    if (value('mountPort') !== '' && !isPort(value('mountPort'))) return 'MOUNT port must be a number from 1 to 65535, or left empty.'
  }
  if (type === 'SMB') {
    // A name or IPv4 address, or an IPv6 one in brackets; then :port.
    const target = /^(?:\[[0-9A-Fa-f:.]+\]|[^:\\/@[\]]+)(?::(\d+))?$/.exec(value('host'))
    if (target === null || (target[1] !== undefined && !isPort(target[1]))) return 'Host is the name or address, with :port when it is not 445: put the share in Share.'
    if (/[\\/]/.test(value('share'))) return "Share is the share's name alone, without / or \\: put the folders under it in Sub-folder."
    if (value('username').includes(':')) return 'User cannot hold ":" (put a domain in Domain).'
    if (/[@\\]/.test(value('domain'))) return 'Domain is the name alone (AD or WORKGROUP), without @ or \\.'
  }
  if (key !== '') {
    // XO's rule: 32 characters that are 32 bytes.
    if (key.length !== 32 || Buffer.byteLength(key) !== 32) return `Encryption key must be exactly 32 ASCII characters (it has ${key.length}).`
    if (TYPE_FIELDS[type].fields.includes(VHD_DIRECTORY) && values.useVhdDirectory !== true) return 'An encryption key needs VhdDirectory: tick it (Xen Orchestra requires it too).'
  }
  return undefined
}

/** The URL of what the form holds, in Xen Orchestra's form; a required field left empty, or a wrong entry, is said by its label. */
export function remoteFormUrl(values: FormValues): string {
  const type = formType(values)
  const value = (name: string) => String(values[name] ?? '').trim()
  const { fields, required } = TYPE_FIELDS[type]
  const missing = fields.filter(field => required.includes(field.name) && value(field.name) === '')
  if (missing.length > 0) throw new Error(`Fill in ${missing.map(field => field.label).join(', ')}.`)
  const wrong = wrongEntry(type, value, values)
  if (wrong !== undefined) throw new Error(wrong)
  const options: Record<string, unknown> = {}
  if (values.useVhdDirectory === true && fields.includes(VHD_DIRECTORY)) options.useVhdDirectory = true
  if (values.allowUnauthorized === true && type === 'S3') options.allowUnauthorized = true
  if (type === 'NFS') for (const name of ['uid', 'gid', 'mountPort']) if (value(name) !== '') options[name] = Number(value(name))
  // A key is taken as typed: spaces may be part of it.
  if (String(values.encryptionKey ?? '') !== '') options.encryptionKey = String(values.encryptionKey)
  const credentials = { username: value('username'), password: String(values.password ?? '') }
  const protocol = values.protocol === 'http' ? 'http' : 'https'
  const remote: RemoteUrl =
    type === 'local folder'
      ? { type: 'file', path: value('path'), options }
      : type === 'NFS'
        ? { type: 'nfs', host: value('host'), ...(value('port') !== '' && { port: value('port') }), path: value('path'), options }
        : type === 'SMB'
          ? { type: 'smb', ...credentials, domain: value('domain') || 'WORKGROUP', host: `${value('host')}\\${value('share')}`, path: value('path'), options }
          : type === 'S3'
            ? { type: 's3', protocol, host: value('host'), path: `/${value('bucket')}/${value('path')}`, ...credentials, ...(value('region') !== '' && { region: value('region') }), options }
            : { type: type === 'Azurite' ? 'azurite' : 'azure', protocol: type === 'Azurite' ? protocol : 'https', host: value('host'), port: '', path: `/${value('container')}/${value('path')}`, ...credentials, options }
  return formatRemoteUrl(remote)
}

export function RemotesScreen() {
  const shell = useShell()
  const remotes = useRpc('remote.list', {}, ['remotes'])
  const view = useFilteredList(remotes.data, r => `${r.name} ${r.url} ${r.type} ${r.status} ${r.proxy ?? ''}`, shell.bodyHeight - 1)
  const [detail, setDetail] = useState<string>()
  const [tests, setTests] = useState<Record<string, RemoteTestResult>>({})
  const add = useAddForm(fieldsOf, INITIAL, {
    submitLabel: 'add',
    label: ({ name }) => `add remote ${String(name)}`,
    submit: async values => shell.client.call('remote.add', { name: String(values.name), url: remoteFormUrl(values) }),
  })

  const testRemote = (name: string) => {
    shell.notify(`Testing ${name}…`)
    shell.client.call('remote.test', { name }).then(
      result => {
        setTests(all => ({ ...all, [name]: result }))
        shell.notify(`${name}: write ${result.writeMiBps.toFixed(1)} MiB/s, read ${result.readMiBps.toFixed(1)} MiB/s, latency ${result.latencyMs.write.toFixed(1)} ms (i: more).`)
      },
      (error: unknown) => shell.notify(`${name}: ${(error as Error).message}`, 'error'),
    )
  }

  useScreenKeys({
    keys: add.adding
      ? add.keys
      : detail !== undefined
        ? [
            { key: 't', label: 'test' },
            { key: 'esc', label: 'back' },
          ]
        : [
            { key: 'a', label: 'add' },
            { key: 'i', label: 'info' },
            { key: 't', label: 'test' },
            { key: 'd', label: 'remove' },
            { key: '/', label: 'filter' },
          ],
    capturing: add.adding ? add.form.capturing : view.filter.editing,
    onKey: (input, key) => {
      if (add.onKey(input, key)) return true
      if (detail !== undefined) {
        if (key.escape) setDetail(undefined)
        else if (input === 't') testRemote(detail)
        else return false
        return true
      }
      if (view.onKey(input, key)) return true
      const remote = view.selected
      if (input === 'a') {
        if (shell.canChange('adding a remote')) add.open()
      } else if ((input === 'i' || key.return) && remote !== undefined) setDetail(remote.name)
      else if (input === 't' && remote !== undefined) testRemote(remote.name)
      else if (input === 'd' && remote !== undefined) {
        if (shell.canChange('removing a remote')) shell.confirm({ message: `Remove the remote ${remote.name} from Lifeboat? Its backups stay where they are.`, onYes: () => void shell.mutate(`remove ${remote.name}`, () => shell.client.call('remote.remove', { name: remote.name })) })
      } else return false
      return true
    },
  })

  if (add.adding) {
    return (
      <Box flexDirection="column">
        <AddFormView title="Add a remote" add={add} width={shell.columns} labelWidth={14} />
        {wrapText(urlPreview(add.form.values), shell.columns).map((line, i) => (
          <Text key={i} dimColor>
            {line}
          </Text>
        ))}
      </Box>
    )
  }
  if (detail !== undefined) return <RemoteDetail name={detail} test={tests[detail]} width={shell.columns} />
  return (
    <Box flexDirection="column">
      <CountLine error={remotes.error} count={view.rows.length} noun="remote" />
      <FilterLine filter={view.filter} />
      <Table
        columns={COLUMNS}
        rows={view.rows}
        rowKey={r => r.name}
        list={view.list}
        height={view.tableHeight}
        width={shell.columns}
        empty="No remotes: press a to add one."
        cells={r => [
          r.status === 'ok' ? { text: '✔ ok', tone: 'green' } : { text: '✖ error', tone: 'red' },
          { text: r.name },
          { text: r.type },
          { text: r.space === undefined && r.status === 'ok' ? 'unknown' : formatBytes(r.space?.free) },
          { text: formatBytes(r.space?.size) },
          r.error === undefined ? { text: r.proxy === undefined ? r.url : `on proxy ${r.proxy} · ${r.url}` } : { text: r.error.message, tone: 'red' },
        ]}
      />
    </Box>
  )
}

/** The URL the form makes, secrets masked, or what is still missing or wrong. */
function urlPreview(values: FormValues): string {
  try {
    // Shown through terminalSafeLine: an SMB sub-folder follows a NUL (shown \0).
    return `URL: ${terminalSafeLine(redactRemoteUrl(remoteFormUrl(values)))}`
  } catch (error) {
    return (error as Error).message
  }
}

function RemoteDetail({ name, test, width }: { name: string; test: RemoteTestResult | undefined; width: number }) {
  const info = useRpc('remote.info', { name }, ['remotes'])
  const lines: Array<[string, string]> = info.data === undefined ? [] : remoteInfoLines(info.data)
  if (test !== undefined) {
    const { latencyMs: l } = test
    lines.push(
      ['last test', `write ${test.writeMiBps.toFixed(1)} MiB/s, read ${test.readMiBps.toFixed(1)} MiB/s (${formatBytes(test.bytes)} probe)`],
      ['latency', `write ${l.write.toFixed(2)} ms, read ${l.read.toFixed(2)} ms, stat ${l.stat.toFixed(2)} ms, delete ${l.delete.toFixed(2)} ms`],
    )
  } else if (info.data !== undefined) lines.push(['last test', 'none yet: press t'])
  return (
    <Box flexDirection="column">
      <Text bold>Remote {name}</Text>
      {info.error !== undefined ? <Text color={tone('red')}>✖ {info.error}</Text> : info.data === undefined ? <Text dimColor>loading…</Text> : null}
      {lines.map(([label, value]) => (
        <Text key={label} wrap="truncate">
          {fit(label, 14)} {fit(value, Math.max(10, width - 16))}
        </Text>
      ))}
    </Box>
  )
}
