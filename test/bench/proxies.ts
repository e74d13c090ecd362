// Benchmark: two proxies and the appliance backing up the default lab's 12 VMs together, against the appliance
// alone, under the lab's rate caps per stream and per host (the seed's: 30 and 120 MiB/s). Real processes: the
// lab (in this process), the appliance's daemon, two proxy services, each behind its own sshd on loopback.
//
// What it shows on one machine: the lab's caps are the pools' (per host), which delegation does not change, so the
// window together is about the window alone — what moves is where the bytes go: the appliance's process reads
// all of them alone, and only its own third with the proxies (its rchar, from /proc). The pools' snapshot and
// export limits are handed out by the appliance, so the three together never exceed them. CPU-seconds of each
// process are printed (the lab, in this process, shares the machine's cores with the engines).
// Run: node --import tsx test/bench/proxies.ts [MiB per disk, default 64]
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startLab } from '../../source/lab/index.ts'
import { DaemonClient } from '../../source/client/index.ts'
import type { TaskNode } from '../../source/protocol/methods.ts'
import { tempDir } from '../helpers/tools.ts'
import { startDaemon, type DaemonProcess } from '../daemon/helpers.ts'
import { startSshd, type Sshd } from '../helpers/sshd.ts'
import { bridgeKeyLine, startProxy, type ProxyProcess } from '../helpers/proxy.ts'

const MiB = 1024 * 1024
const PER_DISK_MiB = Number(process.argv[2] ?? 64)
const CAPS = { exportPerStreamMiBs: 30, exportHostMiBs: 120 }

/** A process's read bytes (rchar) and CPU-seconds (user + system), from /proc. */
async function usage(pid: number): Promise<{ readBytes: number; cpuSeconds: number }> {
  const io = await readFile(`/proc/${pid}/io`, 'utf8')
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ')
  return { readBytes: Number(/^rchar: (\d+)$/m.exec(io)![1]), cpuSeconds: (Number(stat[11]) + Number(stat[12])) / 100 }
}

const dir = await tempDir('lifeboat-bench-proxies-')
const lab = await startLab({ dataDir: join(dir.path, 'lab'), fixture: 'default' })
let daemon: DaemonProcess | undefined
const proxies: ProxyProcess[] = []
const sshds: Sshd[] = []
try {
  daemon = await startDaemon(join(dir.path, 'daemon'))
  const client = await DaemonClient.connect(daemon.socket)
  for (const pool of lab.pools) {
    await client.call('pool.add', { url: pool.url, username: pool.username, password: pool.password })
    pool.control.setKnobs(CAPS)
  }
  const { publicKey } = await client.call('proxy.key')
  for (const name of ['edge1', 'edge2']) {
    const [sshd, proxy] = await Promise.all([startSshd(join(dir.path, `sshd-${name}`)), startProxy(join(dir.path, `proxy-${name}`))])
    sshds.push(sshd)
    proxies.push(proxy)
    await sshd.authorize([bridgeKeyLine(publicKey, proxy.dataDir)])
    const added = await client.call('proxy.add', { name, url: `ssh://${sshd.user}@127.0.0.1:${sshd.port}` })
    if (added.problem !== undefined) throw new Error(`proxy ${name}: ${added.problem.message}`)
  }
  const vms = (await client.call('vm.list')).filter(vm => vm.disks.length > 0)
  let bytes = 0
  for (const vm of vms) {
    for (const disk of vm.disks) {
      const length = Math.min(disk.size, PER_DISK_MiB * MiB)
      await lab.pools.find(pool => pool.poolUuid === vm.poolId)!.control.writeVdi(disk.uuid, { offset: 0, length, seed: 11 })
      bytes += length
    }
  }
  for (const name of ['alone', 'here', 'edge1', 'edge2']) {
    await mkdir(join(dir.path, `remote-${name}`))
    await client.call('remote.add', { name, url: `file://${join(dir.path, `remote-${name}`)}` })
  }
  const schedules = [{ name: 'full', cron: '0 0 1 1 *', timezone: 'UTC', enabled: false, retention: { backups: 2 }, settings: { forceFull: true } }]
  const thirds = [0, 1, 2].map(k => vms.filter((_, index) => index % 3 === k).map(vm => vm.uuid))
  await client.call('job.create', { job: { name: 'alone', mode: 'delta', vms: { uuids: vms.map(vm => vm.uuid) }, remotes: ['alone'], settings: { concurrency: 0 }, schedules } })
  for (const [index, name] of ['here', 'edge1', 'edge2'].entries()) {
    await client.call('job.create', { job: { name, mode: 'delta', vms: { uuids: thirds[index]! }, remotes: [name], settings: { concurrency: 0 }, ...(name !== 'here' && { proxy: name }), schedules } })
  }

  const pids = () => ({ appliance: daemon!.child.pid!, edge1: proxies[0]!.child.pid!, edge2: proxies[1]!.child.pid!, 'lab (and this bench)': process.pid })
  const measure = async (jobs: string[]) => {
    const before = Object.fromEntries(await Promise.all(Object.entries(pids()).map(async ([name, pid]) => [name, await usage(pid)] as const)))
    const runIds = await Promise.all(jobs.map(async id => (await client.call('job.run', { id })).runId))
    const trees: TaskNode[] = []
    for (const runId of runIds) {
      for (;;) {
        const { tree } = await client.call('run.get', { runId })
        if (tree.status !== 'pending') {
          trees.push(tree)
          break
        }
        await new Promise(resolve => setTimeout(resolve, 100))
      }
    }
    const after = Object.fromEntries(await Promise.all(Object.entries(pids()).map(async ([name, pid]) => [name, await usage(pid)] as const)))
    const seconds = (Math.max(...trees.map(tree => tree.end!)) - Math.min(...trees.map(tree => tree.start))) / 1000
    const processes = Object.keys(before).map(name => ({ name, readMiB: (after[name]!.readBytes - before[name]!.readBytes) / MiB, cpuSeconds: after[name]!.cpuSeconds - before[name]!.cpuSeconds }))
    return { seconds, statuses: trees.map(tree => tree.status), processes }
  }

  console.log(`${vms.length} VMs of the default lab, ${(bytes / MiB).toFixed(0)} MiB of disk data (at most ${PER_DISK_MiB} MiB a disk), caps ${CAPS.exportPerStreamMiBs} MiB/s per stream and ${CAPS.exportHostMiBs} MiB/s per host, full backups`)
  const alone = await measure(['alone'])
  const together = await measure(['here', 'edge1', 'edge2'])
  for (const [label, result] of [['the appliance alone (one job, 12 VMs)', alone], ['the appliance and 2 proxies (three jobs of 4 VMs, at once)', together]] as const) {
    console.log(`\n${label}: ${result.seconds.toFixed(1)} s, runs ${result.statuses.join(', ')}`)
    for (const p of result.processes) console.log(`  ${p.name.padEnd(22)} read ${p.readMiB.toFixed(0).padStart(6)} MiB  CPU ${p.cpuSeconds.toFixed(1).padStart(6)} s`)
  }
  const applianceRead = (result: typeof alone) => result.processes.find(p => p.name === 'appliance')!.readMiB
  console.log(`\nwindow together / alone: ${(together.seconds / alone.seconds).toFixed(2)} (the pools' caps are the same either way: about 1 on one machine)`)
  console.log(`bytes read by the appliance together / alone: ${(applianceRead(together) / Math.max(applianceRead(alone), 1)).toFixed(2)} (its own job's third; the proxies read the rest)`)
  client.close()
} finally {
  if (daemon !== undefined) {
    daemon.child.kill('SIGTERM')
    await daemon.exited
  }
  for (const proxy of proxies) await proxy.stop()
  for (const sshd of sshds) await sshd.stop()
  await lab.stop()
  await dir.cleanup()
}
