// What runs inside a lab VM once the host has started it, as a health check sees it through XAPI: the firmware
// boots only a first disk with a boot sector, the guest agent (PV tools) reports `toolsMs` later, and a VM tagged for
// Xen Orchestra's health-check script answers `vm-data/xo-backup-health-check` from a marker sector on that disk.
//
// A first disk (lowest VBD userdevice) without a boot sector — no MBR signature 0x55AA at byte 510, no GPT header
// "EFI PART" at LBA 1 — starts as it does on a real host: the domain runs (HVM firmware finds no bootable device and
// retries forever), so the VM is Running but no guest agent ever reports. The marker is the lab's own protocol, the
// sector at byte HEALTH_CHECK_MARKER_OFFSET of the first disk (in the gap before the first partition of MBR and GPT
// layouts): "LIFEBOAT-HEALTH-CHECK\n" then "success\n", or "failure\n" and an error line. With the tag but no marker,
// the script never answers (a guest without the script).
import type { Toolstack } from './toolstack.ts'
import { xapiDate } from './toolstack.ts'
import { leafOf } from './vdi.ts'

/** Marks a VM whose guest runs the PV tools (lab convention; copied with the VM like the guest's disks would be). */
export const GUEST_TOOLS_KEY = 'lab:guest-tools'
/** XO's tag: the health check waits for the in-guest script's answer in xenstore. */
export const HEALTH_CHECK_SCRIPT_TAG = 'xo-backup-health-check-xenstore'
/** XO's xenstore keys of the script's protocol: planned (written by the checker) → success | failure (by the guest). */
export const HEALTH_CHECK_KEY = 'vm-data/xo-backup-health-check'
export const HEALTH_CHECK_ERROR_KEY = 'vm-data/xo-backup-health-check-error'
export const HEALTH_CHECK_MARKER_OFFSET = 512 * 1024
const MARKER_MAGIC = 'LIFEBOAT-HEALTH-CHECK\n'
const SECTOR = 512

/** The first 512 bytes of a disk that a firmware boots: an MBR signature (what the fixtures write on every first disk). */
export function mbrBootSector(content: Buffer = Buffer.alloc(SECTOR)): Buffer {
  const sector = Buffer.from(content.subarray(0, SECTOR))
  sector[510] = 0x55
  sector[511] = 0xaa
  return sector
}

/** The marker sector that makes the lab's script answer: write it at HEALTH_CHECK_MARKER_OFFSET of the VM's first disk. */
export function healthCheckMarker(outcome: 'success' | 'failure', error?: string): Buffer {
  const sector = Buffer.alloc(SECTOR)
  sector.write(`${MARKER_MAGIC}${outcome}\n${outcome === 'failure' && error !== undefined ? `${error.replace(/\n/g, ' ')}\n` : ''}`, 'latin1')
  return sector
}

/** The VDI the firmware boots from: the disk of the lowest userdevice. */
export function bootDisk(xapi: Toolstack, vm: string): string | undefined {
  const { db } = xapi
  const disks = db.refsWhere('VBD', 'VM', vm).map(ref => db.row('VBD', ref))
    .filter(vbd => vbd.type === 'Disk' && vbd.empty !== true && !xapi.isNull(vbd.VDI) && db.has('VDI', vbd.VDI as string))
    .sort((a, b) => Number(a.userdevice) - Number(b.userdevice))
  return disks[0]?.VDI as string | undefined
}

/** Does the VM's first disk carry a boot sector (MBR signature or GPT header)? */
export async function bootable(xapi: Toolstack, vm: string): Promise<boolean> {
  const vdi = bootDisk(xapi, vm)
  if (vdi === undefined) return false
  const head = await xapi.store.read(leafOf(xapi, vdi), 0, 2 * SECTOR)
  return (head[510] === 0x55 && head[511] === 0xaa) || head.subarray(SECTOR, SECTOR + 8).toString('latin1') === 'EFI PART'
}

/**
 * The guest of a VM that has just started (or resumed: `booted` true, its memory is running already): if it booted
 * and has the tools, its agent reports `toolsMs` later, then the health-check script answers if it was planned.
 */
export function startGuest(xapi: Toolstack, vm: string, guestMetrics: string, booted: boolean): void {
  const { db } = xapi
  const record = db.row('VM', vm)
  if (!booted || (record.other_config as Record<string, string>)[GUEST_TOOLS_KEY] !== 'true') return
  const alive = () => db.has('VM', vm) && db.row('VM', vm).guest_metrics === guestMetrics && db.has('VM_guest_metrics', guestMetrics)
  setTimeout(() => {
    if (!alive()) return
    db.update('VM_guest_metrics', guestMetrics, { PV_drivers_detected: true, PV_drivers_up_to_date: true, last_updated: xapiDate(),
      PV_drivers_version: { major: '8', minor: '2', micro: '0', build: '1' }, os_version: { name: 'Debian GNU/Linux 12', distro: 'debian', major: '12' },
      networks: { '0/ip': `10.0.0.${1 + Math.floor(Math.random() * 250)}`, '0/ipv4/0': '10.0.0.1' } })
    // The script runs once the system is up, a moment after the agent.
    setTimeout(() => void answerHealthCheck(xapi, vm, alive).catch(() => {}), xapi.knobs.toolsMs).unref()
  }, xapi.knobs.toolsMs).unref()
}

/** XO's script (docs/healthcheck/example.sh): on `planned`, writes success or failure (and the error) from the marker. */
async function answerHealthCheck(xapi: Toolstack, vm: string, alive: () => boolean): Promise<void> {
  const { db } = xapi
  const record = db.row('VM', vm)
  const xenstore = record.xenstore_data as Record<string, string>
  if (!(record.tags as string[]).includes(HEALTH_CHECK_SCRIPT_TAG) || xenstore[HEALTH_CHECK_KEY] !== 'planned') return
  const vdi = bootDisk(xapi, vm)
  if (vdi === undefined) return
  const sector = (await xapi.store.read(leafOf(xapi, vdi), HEALTH_CHECK_MARKER_OFFSET, SECTOR)).toString('latin1')
  if (!sector.startsWith(MARKER_MAGIC) || !alive()) return
  const [outcome, error] = sector.slice(MARKER_MAGIC.length).split('\n')
  if (outcome !== 'success' && outcome !== 'failure') return
  const answer: Record<string, string> = { ...(db.row('VM', vm).xenstore_data as Record<string, string>), [HEALTH_CHECK_KEY]: outcome }
  if (outcome === 'failure' && error !== undefined && error !== '') answer[HEALTH_CHECK_ERROR_KEY] = error
  db.update('VM', vm, { xenstore_data: answer })
}
