// What the TUI's cr-seed form lists, from a real daemon on the lab's pair: each VM's snapshots (time,
// disks), and, asked with `templates`, the snapshot's XVA imported on the DR SR (a template until seeded).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { startLab } from '../../source/lab/index.ts'
import { exportVmXva, importVmXva, PoolConnection, vmDisks, type XapiRecord } from '../../source/xapi/index.ts'
import { parseBackupDate } from '../../source/repository/index.ts'
import { DaemonClient } from '../../source/client/index.ts'
import type { Vm } from '../../source/protocol/methods.ts'
import { tempDir } from '../helpers/tools.ts'
import { startDaemon } from './helpers.ts'

test('vm.list: snapshots with their time and disks; templates only when asked, never the built-in ones', async () => {
  const dir = await tempDir('lifeboat-vm-list-seed-')
  const lab = await startLab({ dataDir: join(dir.path, 'lab'), fixture: 'pair' })
  const daemon = await startDaemon(join(dir.path, 'daemon'))
  const [source, dr] = await Promise.all(lab.pools.map(pool => PoolConnection.connect({ url: pool.url, username: pool.username, password: pool.password })))
  const client = await DaemonClient.connect(daemon.socket)
  try {
    for (const pool of lab.pools) await client.call('pool.add', { url: pool.url, username: pool.username, password: pool.password })
    const vm = source!.all('VM').find(v => v.name_label === 'tiny-halted' && v.is_a_snapshot !== true)!
    const snapshotRef = (await source!.call('VM.snapshot', vm.$ref, 'tiny-halted seed')) as string
    const disks = vmDisks(source!, vm).length
    const snapshot = await source!.waitFor(() => (vmDisks(source!, source!.byRef(snapshotRef) ?? ({ VBDs: [] } as never)).length === disks ? source!.byRef(snapshotRef) : undefined), { what: 'the snapshot', timeoutMs: 20_000 })
    const exported = await exportVmXva(source!, snapshot.$ref, { holder: { runId: 'vm-list-test', vm: 'seed', phase: 'export' } })
    const copyRef = await importVmXva(dr!, exported.stream, undefined, dr!.all('SR')[0]!.$ref)
    await exported.task
    const copy: XapiRecord = await dr!.waitFor(() => (vmDisks(dr!, dr!.byRef(copyRef) ?? ({ VBDs: [] } as never)).length === disks ? dr!.byRef(copyRef) : undefined), { what: 'the imported copy', timeoutMs: 20_000 })
    assert.equal(copy.is_a_template, true, 'an imported snapshot comes in as a template')

    const listed = await waitForVm(client, vm.uuid, v => (v.snapshots ?? []).some(s => s.uuid === snapshot.uuid))
    const seen = listed.snapshots!.find(s => s.uuid === snapshot.uuid)!
    assert.equal(seen.name, 'tiny-halted seed')
    assert.equal(seen.time, parseBackupDate(String(snapshot.snapshot_time)))
    assert.deepEqual(
      seen.disks.map(d => d.size),
      vmDisks(source!, snapshot).map(d => Number(d.vdi.virtual_size)),
    )
    assert.equal((await client.call('vm.list', {})).some(v => v.uuid === copy.uuid), false, 'no template without asking')
    const withTemplates = await client.call('vm.list', { templates: true })
    const listedCopy = withTemplates.find(v => v.uuid === copy.uuid)
    assert.equal(listedCopy?.template, true)
    assert.deepEqual(new Set(listedCopy!.disks.map(d => d.srId)), new Set([dr!.all('SR')[0]!.uuid]))
    const builtIn = [...source!.all('VM'), ...dr!.all('VM')].filter(v => v.is_a_template === true && (v.other_config as Record<string, string>).default_template === 'true')
    for (const template of builtIn) assert.equal(withTemplates.some(v => v.uuid === template.uuid), false, `built-in ${String(template.name_label)} is not listed`)
    assert.equal(withTemplates.some(v => v.uuid === snapshot.uuid), false, 'a snapshot is not a VM of the list')
  } finally {
    client.close()
    daemon.child.kill('SIGTERM')
    await daemon.exited
    await Promise.all([source!.disconnect(), dr!.disconnect()])
    await lab.stop()
    await dir.cleanup()
  }
})

/** The daemon's cache follows XAPI's events: the VM as listed once it shows what is expected. */
async function waitForVm(client: DaemonClient, uuid: string, ready: (vm: Vm) => boolean): Promise<Vm> {
  const deadline = Date.now() + 20_000
  for (;;) {
    const vm = (await client.call('vm.list', {})).find(v => v.uuid === uuid)
    if (vm !== undefined && ready(vm)) return vm
    if (Date.now() > deadline) throw new Error(`timed out waiting for the VM ${uuid} to list its new snapshot`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}
