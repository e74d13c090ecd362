// Pools, VMs and SRs: what Lifeboat is connected to. Pools can be added (URL, user, password) and
// removed; VMs and SRs are listed with their state, tags and free space.
import { Box } from 'ink'
import { useRpc, useScreenKeys, useShell } from '../shell.tsx'
import { Table, type Column } from '../components/list.tsx'
import { FilterLine } from '../components/input.tsx'
import { AddFormView, useAddForm, type Field } from '../components/form.tsx'
import type { Vm } from '../contract.ts'
import { formatBytes } from '../format.ts'
import type { Tone } from '../theme.ts'
import { CountLine, useFilteredList } from './common.tsx'

const POOL_FIELDS: Field[] = [
  { name: 'url', label: 'URL', kind: 'text', hint: 'https://pool-master' },
  { name: 'username', label: 'User', kind: 'text' },
  { name: 'password', label: 'Password', kind: 'text', secret: true },
]

export function PoolsScreen() {
  const shell = useShell()
  const pools = useRpc('pool.list', {}, ['pools'])
  const view = useFilteredList(pools.data, p => `${p.name} ${p.url} ${p.status}`, shell.bodyHeight - 1)
  const add = useAddForm(POOL_FIELDS, { url: '', username: 'root', password: '' }, {
    submitLabel: 'connect',
    label: ({ url }) => `add pool ${String(url)}`,
    submit: ({ url, username, password }) => shell.client.call('pool.add', { url: String(url), username: String(username), password: String(password) }),
  })

  useScreenKeys({
    keys: add.adding
      ? add.keys
      : [
          { key: 'a', label: 'add' },
          { key: 'd', label: 'remove' },
          { key: 'enter', label: 'VMs' },
          { key: 's', label: 'SRs' },
          { key: '/', label: 'filter' },
        ],
    capturing: add.adding ? add.form.capturing : view.filter.editing,
    onKey: (input, key) => {
      if (add.onKey(input, key)) return true
      if (view.onKey(input, key)) return true
      const pool = view.selected
      if (input === 'a') {
        if (shell.canChange('adding a pool')) add.open()
      } else if (input === 'd' && pool !== undefined) {
        if (shell.canChange('removing a pool')) shell.confirm({ message: `Disconnect Lifeboat from the pool ${pool.name}? Jobs on its VMs will skip them.`, onYes: () => void shell.mutate(`remove ${pool.name}`, () => shell.client.call('pool.remove', { id: pool.id })) })
      } else if ((key.return || input === 's') && pool !== undefined) {
        if (pool.id === '') shell.notify(`${pool.name} has not connected yet: its VMs and SRs are not known.`, 'error')
        else shell.navigate({ screen: key.return ? 'vms' : 'srs', pool: { id: pool.id, name: pool.name } })
      } else return false
      return true
    },
  })

  if (add.adding) return <AddFormView title="Connect a pool (its master)" add={add} width={shell.columns} labelWidth={9} />
  return (
    <Box flexDirection="column">
      <CountLine error={pools.error} count={view.rows.length} noun="pool" />
      <FilterLine filter={view.filter} />
      <Table
        columns={[
          { title: 'State', width: 12 },
          { title: 'Pool', width: 16 },
          { title: 'Hosts', width: 5, align: 'right' },
          { title: 'URL / problem', width: 0 },
        ]}
        rows={view.rows}
        rowKey={p => p.id || p.url}
        list={view.list}
        height={view.tableHeight}
        width={shell.columns}
        empty="No pools: press a to connect one."
        cells={p => [
          p.status === 'connected' ? { text: '✔ connected', tone: 'green' } : p.status === 'connecting' ? { text: '⟳ connecting', tone: 'cyan' } : { text: '✖ error', tone: 'red' },
          { text: p.name },
          { text: String(p.hosts) },
          p.error === undefined ? { text: `${p.username}@${p.url}` } : { text: p.error.message, tone: 'red' },
        ]}
      />
    </Box>
  )
}

const POWER: Record<Vm['powerState'], { text: string; tone: Tone }> = {
  Running: { text: '▶ running', tone: 'green' },
  Halted: { text: '■ halted', tone: 'gray' },
  Suspended: { text: '⏸ suspended', tone: 'yellow' },
  Paused: { text: '⏸ paused', tone: 'yellow' },
}

const VM_COLUMNS: Column[] = [
  { title: 'Power', width: 11 },
  { title: 'VM', width: 0 },
  { title: 'Pool', width: 10 },
  { title: 'Disks', width: 9, align: 'right' },
  { title: 'Tags', width: 0 },
]

export function VmsScreen({ poolId }: { poolId?: string }) {
  const shell = useShell()
  const vms = useRpc('vm.list', poolId === undefined ? {} : { pool: poolId }, ['pools'])
  const view = useFilteredList(vms.data, vm => `${vm.name} ${vm.uuid} ${vm.poolName} ${vm.powerState} ${vm.tags.join(' ')}`, shell.bodyHeight - 1)
  useScreenKeys({ keys: [{ key: '/', label: 'filter (name, tag, pool, power)' }], capturing: view.filter.editing, onKey: view.onKey })
  return (
    <Box flexDirection="column">
      <CountLine error={vms.error} count={view.rows.length} noun="VM" />
      <FilterLine filter={view.filter} />
      <Table
        columns={VM_COLUMNS}
        rows={view.rows}
        rowKey={vm => vm.uuid}
        list={view.list}
        height={view.tableHeight}
        width={shell.columns}
        empty="No VMs: connect a pool first (:pools)."
        cells={vm => [POWER[vm.powerState], { text: vm.name }, { text: vm.poolName }, { text: formatBytes(vm.disks.reduce((sum, d) => sum + d.size, 0)) }, { text: vm.tags.join(' ') }]}
      />
    </Box>
  )
}

export function SrsScreen({ poolId }: { poolId?: string }) {
  const shell = useShell()
  const srs = useRpc('sr.list', poolId === undefined ? {} : { pool: poolId }, ['pools'])
  const view = useFilteredList(srs.data, sr => `${sr.name} ${sr.uuid} ${sr.poolName} ${sr.type}`, shell.bodyHeight - 1)
  useScreenKeys({ keys: [{ key: '/', label: 'filter' }], capturing: view.filter.editing, onKey: view.onKey })
  return (
    <Box flexDirection="column">
      <CountLine error={srs.error} count={view.rows.length} noun="SR" />
      <FilterLine filter={view.filter} />
      <Table
        columns={[
          { title: 'SR', width: 0 },
          { title: 'Pool', width: 10 },
          { title: 'Type', width: 6 },
          { title: 'Free', width: 9, align: 'right' },
          { title: 'Size', width: 9, align: 'right' },
          { title: 'Shared', width: 6 },
        ]}
        rows={view.rows}
        rowKey={sr => sr.uuid}
        list={view.list}
        height={view.tableHeight}
        width={shell.columns}
        empty="No SRs: connect a pool first (:pools)."
        cells={sr => [{ text: sr.name }, { text: sr.poolName }, { text: sr.type }, { text: formatBytes(sr.free), tone: sr.size > 0 && sr.free / sr.size < 0.1 ? 'red' : undefined }, { text: formatBytes(sr.size) }, { text: sr.shared ? 'yes' : 'no' }]}
      />
    </Box>
  )
}
