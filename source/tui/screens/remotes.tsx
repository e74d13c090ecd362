// Remotes: where backups go, with state and free space; add (name + URL), test (write, read, delete a
// probe and measure), remove.
import { Box } from 'ink'
import { useRpc, useScreenKeys, useShell } from '../shell.tsx'
import { Table, type Column } from '../components/list.tsx'
import { FilterLine } from '../components/input.tsx'
import { AddFormView, useAddForm, type Field } from '../components/form.tsx'
import { formatBytes } from '../format.ts'
import { CountLine, useFilteredList } from './common.tsx'

const COLUMNS: Column[] = [
  { title: 'State', width: 7 },
  { title: 'Remote', width: 14 },
  { title: 'Type', width: 5 },
  { title: 'Free', width: 9, align: 'right' },
  { title: 'Size', width: 9, align: 'right' },
  { title: 'URL / problem', width: 0 },
]

const ADD_FIELDS: Field[] = [
  { name: 'name', label: 'Name', kind: 'text', hint: 'letters, digits, . _ -' },
  { name: 'url', label: 'URL', kind: 'text', hint: 'file:///srv/backups, nfs://host:/export, s3://KEY:SECRET@host/bucket' },
]

export function RemotesScreen() {
  const shell = useShell()
  const remotes = useRpc('remote.list', {}, ['remotes'])
  const view = useFilteredList(remotes.data, r => `${r.name} ${r.url} ${r.type} ${r.status}`, shell.bodyHeight - 1)
  const add = useAddForm(ADD_FIELDS, { name: '', url: '' }, {
    submitLabel: 'add',
    label: ({ name }) => `add remote ${String(name)}`,
    submit: ({ name, url }) => shell.client.call('remote.add', { name: String(name), url: String(url) }),
  })

  useScreenKeys({
    keys: add.adding
      ? add.keys
      : [
          { key: 'a', label: 'add' },
          { key: 't', label: 'test' },
          { key: 'd', label: 'remove' },
          { key: '/', label: 'filter' },
        ],
    capturing: add.adding ? add.form.capturing : view.filter.editing,
    onKey: (input, key) => {
      if (add.onKey(input, key)) return true
      if (view.onKey(input, key)) return true
      const remote = view.selected
      if (input === 'a') {
        if (shell.canChange('adding a remote')) add.open()
      } else if (input === 't' && remote !== undefined) {
        shell.notify(`Testing ${remote.name}…`)
        shell.client.call('remote.test', { name: remote.name }).then(
          result => shell.notify(`${remote.name}: write ${result.writeMiBps.toFixed(1)} MiB/s, read ${result.readMiBps.toFixed(1)} MiB/s (${formatBytes(result.bytes)} probe).`),
          (error: unknown) => shell.notify(`${remote.name}: ${(error as Error).message}`, 'error'),
        )
      } else if (input === 'd' && remote !== undefined) {
        if (shell.canChange('removing a remote')) shell.confirm({ message: `Remove the remote ${remote.name} from Lifeboat? Its backups stay where they are.`, onYes: () => void shell.mutate(`remove ${remote.name}`, () => shell.client.call('remote.remove', { name: remote.name })) })
      } else return false
      return true
    },
  })

  if (add.adding) return <AddFormView title="Add a remote" fields={ADD_FIELDS} add={add} width={shell.columns} labelWidth={8} />
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
          { text: formatBytes(r.space?.free) },
          { text: formatBytes(r.space?.size) },
          r.error === undefined ? { text: r.url } : { text: r.error.message, tone: 'red' },
        ]}
      />
    </Box>
  )
}
