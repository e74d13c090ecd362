// Benchmark: does watching a run slow it down? A real daemon backs up the tiny lab's VMs (disks filled,
// forced full) with no subscriber, then with many subscribed clients reading and one that stops reading.
// Prints each run's throughput and the daemon's RSS. Run: node --import tsx test/bench/daemon.ts [clients] [runs]
import { readFile, mkdir } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { once } from 'node:events'
import { startLab } from '../../source/lab/index.ts'
import { DaemonClient } from '../../source/client/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { startDaemon } from '../daemon/helpers.ts'

const CLIENTS = Number(process.argv[2] ?? 50)
const RUNS = Number(process.argv[3] ?? 3)
const MiB = 1024 * 1024

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024
}

const dir = await tempDir('lifeboat-bench-daemon-')
const lab = await startLab({ dataDir: join(dir.path, 'lab'), fixture: 'tiny' })
const daemon = await startDaemon(join(dir.path, 'daemon'))
const client = await DaemonClient.connect(daemon.socket)
const watchers: DaemonClient[] = []
const stalled: Socket[] = []
try {
  const pool = lab.pools[0]!
  await client.call('pool.add', { url: pool.url, username: pool.username, password: pool.password })
  await mkdir(join(dir.path, 'remote'))
  await client.call('remote.add', { name: 'bench', url: `file://${join(dir.path, 'remote')}` })
  const vms = await client.call('vm.list')
  let bytesPerRun = 0
  for (const vm of vms) {
    for (const disk of vm.disks) {
      await lab.control.writeVdi(disk.uuid, { offset: 0, length: disk.size, seed: 7 })
      bytesPerRun += disk.size
    }
  }
  await client.call('job.create', {
    job: { name: 'bench', mode: 'delta', vms: { uuids: vms.map(vm => vm.uuid) }, remotes: ['bench'], settings: { concurrency: 0 },
      schedules: [{ name: 'full', cron: '0 0 1 1 *', timezone: 'UTC', enabled: false, retention: { backups: 2 }, settings: { forceFull: true } }] },
  })

  const runOnce = async (): Promise<{ seconds: number; status: string }> => {
    const { runId } = await client.call('job.run', { id: 'bench' })
    await client.subscribe(['tasks'], runId)
    for (;;) {
      const { tree } = await client.call('run.get', { runId })
      if (tree.status !== 'pending') return { seconds: (tree.end! - tree.start) / 1000, status: tree.status }
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  }

  const phase = async (label: string) => {
    let peak = await rssMiB(daemon.child.pid!)
    const sampler = setInterval(() => void rssMiB(daemon.child.pid!).then(rss => (peak = Math.max(peak, rss)), () => {}), 50)
    const speeds: number[] = []
    for (let i = 0; i < RUNS; i++) {
      const { seconds, status } = await runOnce()
      if (status !== 'success') throw new Error(`run ${label} #${i}: ${status}`)
      speeds.push(bytesPerRun / MiB / seconds)
    }
    clearInterval(sampler)
    speeds.sort((a, b) => a - b)
    console.log(`${label.padEnd(44)} median ${speeds[Math.floor(speeds.length / 2)]!.toFixed(1)} MiB/s (${speeds.map(s => s.toFixed(1)).join(', ')}), daemon peak RSS ${peak.toFixed(0)} MiB`)
  }

  console.log(`${vms.length} VMs, ${bytesPerRun / MiB} MiB per forced-full run, ${RUNS} runs per phase`)
  await phase('no subscribers')

  let notifications = 0
  for (let i = 0; i < CLIENTS; i++) {
    const watcher = await DaemonClient.connect(daemon.socket)
    watcher.onNotification('task.event', () => notifications++)
    watcher.onNotification('lanes', () => notifications++)
    await watcher.subscribe(['tasks', 'lanes', 'state'])
    watchers.push(watcher)
  }
  await phase(`${CLIENTS} clients reading`)

  const socket = connect(daemon.socket)
  await once(socket, 'connect')
  socket.write('{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"topics":["tasks","lanes","state"]}}\n')
  socket.pause()
  stalled.push(socket)
  await phase(`${CLIENTS} clients reading + 1 that stopped reading`)
  console.log(`notifications received by the reading clients: ${notifications}`)
} finally {
  for (const watcher of watchers) watcher.close()
  for (const socket of stalled) socket.destroy()
  client.close()
  daemon.child.kill('SIGTERM')
  await daemon.exited
  await lab.stop()
  await dir.cleanup()
}
