// File-level restore of a delta restore point: a session opens on it (closed when the screen is left), its
// disks' partitions and LVM volumes (the ones that cannot be read say why), then a volume's folders a page
// at a time (a folder of 100 000 entries costs one page), `/` a name search under the folder, space marks
// files and folders, `g` fetches them as tar or zip to a path on the appliance (a run, followed live).
import { useEffect, useState } from 'react'
import { Box, Text } from 'ink'
import { runStarted, useRpc, useScreenKeys, useShell } from '../shell.tsx'
import { Table, useListCursor } from '../components/list.tsx'
import { Caret, editText } from '../components/input.tsx'
import { FormView, useForm, type Field } from '../components/form.tsx'
import { errorText } from '../client.ts'
import type { TuiMethods } from '../contract.ts'
import { modeText, type FileRestoreEntry, type FileRestoreVolume } from '../../protocol/file-restore.ts'
import { terminalSafe } from '../../util/terminal-text.ts'
import { formatBytes, formatDate, wrapText } from '../format.ts'
import { tone } from '../theme.ts'

/** Entries asked for at a time: one page is all a folder costs, however big. */
export const PAGE_SIZE = 200
const FIND_LIMIT = 1000

type Opened = TuiMethods['fileRestore.open']['result']
interface VolumeRow extends FileRestoreVolume {
  disk: string
  diskName: string
}
type Row = FileRestoreEntry & { path: string }

const FETCH_FIELDS: Field[] = [
  { name: 'destination', label: 'Destination', kind: 'text', hint: 'a new file on the appliance' },
  { name: 'format', label: 'Format', kind: 'choice', choices: ['tar', 'zip'] },
]

export function FileRestoreScreen({ remote, backupId }: { remote: string; backupId: string }) {
  const shell = useShell()
  const { client } = shell
  const [opened, setOpened] = useState<{ data?: Opened; error?: string }>({})
  const [volumes, setVolumes] = useState<{ rows?: VolumeRow[]; error?: string }>({})
  const [volume, setVolume] = useState<VolumeRow>()
  const [path, setPath] = useState('/')
  /** The name cursor of each page shown so far in this folder: the last one is the page on screen. */
  const [afters, setAfters] = useState<Array<string | undefined>>([undefined])
  const [query, setQuery] = useState<{ text: string; editing: boolean }>({ text: '', editing: false })
  const [found, setFound] = useState<{ query: string; matches?: Row[]; truncated?: boolean; error?: string }>()
  const [marked, setMarked] = useState<Map<string, Row>>(new Map())
  const [fetching, setFetching] = useState(false)
  const form = useForm(FETCH_FIELDS, { destination: '', format: 'tar' })

  useEffect(() => {
    let session: string | undefined
    let current = true
    client.call('fileRestore.open', { remote, backupId }).then(
      data => {
        session = data.session
        if (current) setOpened({ data })
        else void client.call('fileRestore.close', { session }).catch(() => {})
      },
      (error: unknown) => current && setOpened({ error: errorText(error) }),
    )
    return () => {
      current = false
      // A fetch still reading keeps the session: the daemon refuses to close it and closes it once idle.
      if (session !== undefined) void client.call('fileRestore.close', { session }).catch(() => {})
    }
  }, [client, remote, backupId])

  const session = opened.data?.session
  useEffect(() => {
    if (opened.data === undefined) return
    const { session: id, disks } = opened.data
    let current = true
    Promise.all(disks.map(async disk => (await client.call('fileRestore.volumes', { session: id, disk: disk.id })).map(v => ({ ...v, disk: disk.id, diskName: disk.name })))).then(
      lists => current && setVolumes({ rows: lists.flat() }),
      (error: unknown) => current && setVolumes({ error: errorText(error) }),
    )
    return () => {
      current = false
    }
  }, [client, opened.data])

  const after = afters[afters.length - 1]
  const where = session === undefined || volume === undefined ? undefined : { session, disk: volume.disk, volume: volume.id }
  const page = useRpc('fileRestore.list', where === undefined ? undefined : { ...where, path, limit: PAGE_SIZE, ...(after !== undefined && { after }) })
  const entries: Row[] = (page.data?.entries ?? []).map(e => ({ ...e, path: childPath(path, e.name) }))
  const view = volume === undefined ? 'volumes' : found === undefined ? 'folder' : 'found'
  const rows = view === 'found' ? (found?.matches ?? []) : entries
  const failure = opened.error ?? volumes.error ?? (view === 'folder' ? page.error : found?.error)
  const failureLines = failure === undefined ? [] : wrapText(`✖ ${failure}`, shell.columns).slice(0, 3)
  // Below the title and the trail: the failure, the table (with the line above it), the search line.
  const height = shell.bodyHeight - 2 - failureLines.length - (query.editing ? 1 : 0)
  const volumeList = useListCursor(volumes.rows?.length ?? 0, height - 4)
  const entryList = useListCursor(rows.length, height - 2)
  const chosenVolume = volumes.rows?.[volumeList.cursor]
  const entry = rows[entryList.cursor]

  const enterFolder = (to: string) => {
    setPath(to)
    setAfters([undefined])
    setFound(undefined)
    entryList.setCursor(0)
  }
  const search = (text: string) => {
    if (where === undefined || text === '') return
    setFound({ query: text })
    entryList.setCursor(0)
    client.call('fileRestore.find', { ...where, path, query: text, limit: FIND_LIMIT }).then(
      result => setFound({ query: text, matches: result.matches, truncated: result.truncated }),
      (error: unknown) => setFound({ query: text, matches: [], error: errorText(error) }),
    )
  }
  const toggle = (row: Row) =>
    setMarked(previous => {
      const next = new Map(previous)
      if (next.has(row.path)) next.delete(row.path)
      else next.set(row.path, row)
      return next
    })
  const chosenPaths = () => (marked.size > 0 ? [...marked.keys()] : entry === undefined ? [] : [entry.path])
  const fetch = async () => {
    const values = form.latest()
    const destination = String(values.destination).trim()
    const paths = chosenPaths()
    if (where === undefined || paths.length === 0) return
    if (!destination.startsWith('/')) return shell.notify('Give the destination as an absolute path on the appliance (e.g. /srv/restore/files.tar).', 'error')
    if (!shell.canChange('fetching files')) return
    const label = `fetch of ${paths.length} path${paths.length === 1 ? '' : 's'}`
    const started = await shell.mutate(label, () => client.call('fileRestore.fetch', { ...where, paths, format: values.format === 'zip' ? 'zip' : 'tar', destination }), runStarted(label))
    if (started === undefined) return
    setFetching(false)
    setMarked(new Map())
    shell.navigate({ screen: 'run', runId: started.runId, follow: true })
  }

  useScreenKeys({
    keys: fetching
      ? [{ key: 'enter', label: 'fetch' }, { key: '←/→', label: 'format' }, { key: 'esc', label: 'cancel' }]
      : view === 'volumes'
        ? [{ key: 'enter', label: 'browse' }, { key: 'esc', label: 'leave' }]
        : [
            { key: 'enter', label: 'open folder' },
            { key: '⌫/←', label: 'up' },
            { key: 'space', label: 'mark' },
            { key: 'g', label: 'fetch' },
            { key: '/', label: 'search' },
            { key: ']/[', label: 'next/prev page', more: true },
            { key: 'esc', label: view === 'found' ? 'back to folder' : 'volumes' },
          ],
    capturing: query.editing || (fetching && form.capturing),
    onKey: (input, key) => {
      if (fetching) {
        if (key.escape) setFetching(false)
        else if (key.return) void fetch()
        else form.onKey(input, key)
        return true
      }
      if (query.editing) {
        if (key.escape) setQuery({ text: '', editing: false })
        else if (key.return) {
          setQuery({ text: query.text, editing: false })
          search(query.text.trim())
        } else setQuery(q => ({ ...q, text: editText(q.text, input, key) ?? q.text }))
        return true
      }
      if (view === 'volumes') {
        if (key.escape) return false
        if (volumeList.onKey(input, key)) return true
        if (key.return && chosenVolume !== undefined) {
          if (chosenVolume.browsable) {
            setVolume(chosenVolume)
            enterFolder('/')
          } else shell.notify(`Volume ${chosenVolume.id} cannot be browsed: ${chosenVolume.reason ?? 'its content is not known.'}`, 'error')
        }
        return true
      }
      if (key.escape) {
        if (view === 'found') setFound(undefined)
        else {
          setVolume(undefined)
          setMarked(new Map())
        }
        return true
      }
      if (input === 'g') {
        if (chosenPaths().length > 0 && shell.canChange('fetching files')) setFetching(true)
        return true
      }
      if (entryList.onKey(input, key)) return true
      if (input === '/') return (setQuery({ text: '', editing: true }), true)
      if (input === ' ' && entry !== undefined) return (toggle(entry), entryList.setCursor(entryList.cursor + 1), true)
      if (key.return && entry?.type === 'directory') return (enterFolder(entry.path), true)
      if ((key.backspace || key.delete || key.leftArrow) && view === 'folder' && path !== '/') return (enterFolder(parentPath(path)), true)
      if (input === ']' && view === 'folder' && page.data?.next !== undefined) return (setAfters([...afters, page.data.next]), entryList.setCursor(0), true)
      if (input === '[' && view === 'folder' && afters.length > 1) return (setAfters(afters.slice(0, -1)), entryList.setCursor(0), true)
      return false
    },
  })

  const title = opened.data === undefined ? backupId : `${terminalSafe(opened.data.vm)} as of ${formatDate(opened.data.backupDate, { seconds: true })}`
  const trail = volume === undefined ? 'Volumes' : `disk ${volume.disk} ▸ volume ${volume.id} (${volume.content}) ▸ ${terminalSafe(path)}`
  return (
    <Box flexDirection="column">
      <Text wrap="truncate" bold>
        Files of {title} on {remote}
      </Text>
      <Text wrap="truncate" dimColor>
        {trail}
        {marked.size > 0 ? `  · ${marked.size} marked` : ''}
      </Text>
      {failureLines.map((line, i) => (
        <Text key={i} color={tone('red')}>
          {line}
        </Text>
      ))}
      {opened.error !== undefined ? null : view === 'volumes' ? (
        <VolumesView rows={volumes.rows} list={volumeList} height={height} width={shell.columns} />
      ) : fetching ? (
        <Box flexDirection="column">
          <Text bold>Fetch {chosenPaths().length === 1 ? terminalSafe(chosenPaths()[0]!) : `${chosenPaths().length} marked files and folders`} into an archive</Text>
          <FormView form={form} width={shell.columns} labelWidth={14} />
          <Text dimColor>Nothing is overwritten: the destination must not exist yet.</Text>
        </Box>
      ) : (
        <Box flexDirection="column">
          <Text wrap="truncate" dimColor>
            {view === 'found' ? foundLine(found!) : pageLine(page.data, afters.length, entries.length, page.loading)}
          </Text>
          <Table
            columns={[{ title: ' ', width: 1 }, { title: 'Mode', width: 10 }, { title: 'Size', width: 9, align: 'right' }, { title: 'Modified', width: 16 }, { title: view === 'found' ? 'Path' : 'Name', width: 0 }]}
            rows={rows}
            rowKey={r => r.path}
            list={entryList}
            height={height - 1}
            width={shell.columns}
            empty={view === 'found' ? (found?.matches === undefined ? 'Searching…' : 'Nothing matches.') : page.loading ? 'Listing…' : 'This folder is empty.'}
            cells={r => [{ text: marked.has(r.path) ? '✔' : ' ', tone: 'green' }, { text: modeText(r) }, { text: r.type === 'directory' ? '-' : formatBytes(r.size) }, { text: formatDate(r.mtime) }, { text: entryName(r, view === 'found' ? r.path : r.name) }]}
          />
        </Box>
      )}
      {query.editing ? (
        <Text wrap="truncate">
          <Text bold>search under {terminalSafe(path)}: </Text>
          {query.text}
          <Caret />
        </Text>
      ) : null}
    </Box>
  )
}

function VolumesView({ rows, list, height, width }: { rows: VolumeRow[] | undefined; list: ReturnType<typeof useListCursor>; height: number; width: number }) {
  const chosen = rows?.[list.cursor]
  return (
    <Box flexDirection="column">
      <Table
        columns={[{ title: 'Disk', width: 14 }, { title: 'Volume', width: 10 }, { title: 'Size', width: 9, align: 'right' }, { title: 'Content', width: 7 }, { title: 'Label', width: 10 }, { title: 'Browse', width: 0 }]}
        rows={rows ?? []}
        rowKey={v => `${v.disk}/${v.id}`}
        list={list}
        height={height - 3}
        width={width}
        empty={rows === undefined ? 'Opening the restore point…' : 'No volume found on the disks.'}
        cells={v => [{ text: `${v.disk}: ${terminalSafe(v.diskName)}` }, { text: v.id }, { text: formatBytes(v.size) }, { text: v.content }, { text: terminalSafe(v.label ?? '') }, v.browsable ? { text: '✔ yes', tone: 'green' } : { text: '✖ no', tone: 'red' }]}
      />
      {chosen === undefined || chosen.browsable ? null : wrapText(`✖ ${chosen.reason ?? 'its content is not known.'}`, width).slice(0, 3).map((line, i) => (
        <Text key={i} color={tone('red')}>
          {line}
        </Text>
      ))}
      {chosen?.browsable === true && chosen.warning !== undefined ? wrapText(`⚠ ${chosen.warning}`, width).slice(0, 3).map((line, i) => (
        <Text key={i} color={tone('yellow')}>
          {line}
        </Text>
      )) : null}
    </Box>
  )
}

function entryName(entry: FileRestoreEntry, name: string): string {
  return terminalSafe(`${name}${entry.type === 'directory' ? '/' : ''}${entry.target === undefined ? '' : ` -> ${entry.target}`}`)
}

function pageLine(page: TuiMethods['fileRestore.list']['result'] | undefined, number: number, shown: number, loading: boolean): string {
  if (page === undefined) return loading ? 'Listing…' : ''
  const first = (number - 1) * PAGE_SIZE
  const pages = page.next !== undefined || number > 1 ? `, page ${number} (] next, [ previous)` : ''
  return `${page.total} entries${shown === 0 ? '' : `: ${first + 1}–${first + shown}`}${pages}${loading ? ' …' : ''}`
}

function foundLine(found: { query: string; matches?: Row[]; truncated?: boolean }): string {
  if (found.matches === undefined) return `Searching for "${terminalSafe(found.query)}"…`
  return `${found.matches.length} match${found.matches.length === 1 ? '' : 'es'} for "${terminalSafe(found.query)}"${found.truncated === true ? ` (the first ${FIND_LIMIT}: narrow the search)` : ''}`
}

function childPath(folder: string, name: string): string {
  return folder === '/' ? `/${name}` : `${folder}/${name}`
}

function parentPath(path: string): string {
  const cut = path.lastIndexOf('/')
  return cut <= 0 ? '/' : path.slice(0, cut)
}
