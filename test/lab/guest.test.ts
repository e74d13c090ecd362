// The guest a health check sees (lab/guest.ts): a first disk with a boot sector (MBR or GPT) boots and its agent
// reports; one without starts Running but never gets an agent; a VM tagged for XO's script answers it from the marker
// sector on its disk (success, failure with its error), and stays silent without a marker. Fixture VMs boot as shipped.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { healthCheckMarker, HEALTH_CHECK_ERROR_KEY, HEALTH_CHECK_KEY, HEALTH_CHECK_MARKER_OFFSET, HEALTH_CHECK_SCRIPT_TAG } from '../../source/lab/guest.ts'
import { diskOf, useTinyLab, vmNamed, waitFor, type XapiClient } from './helpers.ts'

const base64 = (data: Buffer) => data.toString('base64')

describe('lab guests', () => {
  const tiny = useTinyLab()

  /** A clone of tiny-running (a guest with tools), its first disk's head replaced by `head` when given. */
  async function guest(name: string, head?: Buffer): Promise<any> {
    const { xapi, env } = tiny
    const source = vmNamed(xapi, 'tiny-halted')
    const ref = await xapi.callAsync('VM.clone', source.$ref, name)
    await xapi.call('VM.add_to_other_config', ref, 'lab:guest-tools', 'true')
    const vm = await waitFor(() => objectByRef(xapi, ref)?.$VBDs?.length > 0 && objectByRef(xapi, ref), `${name} in the cache`)
    if (head !== undefined) await env.pool.control.writeVdi(diskOf(vm).uuid, { offset: 0, data: base64(head) })
    return vm
  }

  const agentOf = (xapi: XapiClient, ref: string) => objectByRef(xapi, objectByRef(xapi, ref)?.guest_metrics)?.PV_drivers_detected === true

  test('a first disk with an MBR signature or a GPT header boots; one with neither runs without an agent ever', async () => {
    const { xapi } = tiny
    const gpt = Buffer.alloc(1024)
    gpt.write('EFI PART', 512, 'latin1')
    const mbr = await guest('boots-mbr')
    const efi = await guest('boots-gpt', gpt)
    const blank = await guest('no-boot-sector', Buffer.alloc(1024))
    // Started in this order: the blank one's agent would report before the other two's.
    for (const vm of [blank, mbr, efi]) await xapi.callAsync('VM.start', vm.$ref, false, false)
    await waitFor(() => agentOf(xapi, mbr.$ref) && agentOf(xapi, efi.$ref), 'the agents of the bootable guests', 10_000)
    const vm = objectByRef(xapi, blank.$ref)
    assert.equal(vm.power_state, 'Running', 'the host starts the domain: the firmware finds nothing to boot')
    assert.equal(agentOf(xapi, blank.$ref), false, 'no agent')
    for (const guestVm of [blank, mbr, efi]) await xapi.callAsync('VM.hard_shutdown', guestVm.$ref)
  })

  test("a VM tagged for XO's script answers it from its marker: success, failure with its error, silence without a marker", async () => {
    const { xapi, env } = tiny
    const marked = async (name: string, marker?: Buffer) => {
      const vm = await guest(name)
      if (marker !== undefined) await env.pool.control.writeVdi(diskOf(vm).uuid, { offset: HEALTH_CHECK_MARKER_OFFSET, data: base64(marker) })
      await xapi.call('VM.add_tags', vm.$ref, HEALTH_CHECK_SCRIPT_TAG)
      await xapi.call('VM.add_to_xenstore_data', vm.$ref, HEALTH_CHECK_KEY, 'planned')
      await xapi.callAsync('VM.start', vm.$ref, false, false)
      return vm
    }
    const silent = await marked('script-absent')
    const good = await marked('script-success', healthCheckMarker('success'))
    const bad = await marked('script-failure', healthCheckMarker('failure', 'nginx did not start'))
    const xenstore = (vm: any) => objectByRef(xapi, vm.$ref).xenstore_data as Record<string, string>
    await waitFor(() => xenstore(good)[HEALTH_CHECK_KEY] === 'success' && xenstore(bad)[HEALTH_CHECK_KEY] === 'failure', 'the scripts to answer', 10_000)
    assert.equal(xenstore(bad)[HEALTH_CHECK_ERROR_KEY], 'nginx did not start')
    assert.equal(xenstore(good)[HEALTH_CHECK_ERROR_KEY], undefined)
    assert.ok(agentOf(xapi, silent.$ref), 'the guest without a marker runs, its agent reported')
    assert.equal(xenstore(silent)[HEALTH_CHECK_KEY], 'planned', 'no marker: the script never answers')
    for (const vm of [silent, good, bad]) await xapi.callAsync('VM.hard_shutdown', vm.$ref)
  })

  test('the fixture VMs boot as shipped: their first disk has a boot sector', async () => {
    const { xapi } = tiny
    const vm = await guest('fixture-disk')
    await xapi.callAsync('VM.start', vm.$ref, false, false)
    await waitFor(() => agentOf(xapi, vm.$ref), 'the agent of a fixture disk', 10_000)
    await xapi.callAsync('VM.hard_shutdown', vm.$ref)
  })
})

function objectByRef(xapi: XapiClient, ref: string | undefined): any {
  return ref === undefined ? undefined : xapi.getObject(ref, undefined)
}
