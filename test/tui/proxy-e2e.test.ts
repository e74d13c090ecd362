// A job on a proxy in a real terminal (tmux, 80×24) against real processes: the lab, an sshd on loopback, the proxy
// service and the appliance's daemon, the proxy added with proxy.add. By keys only: the wizard's Runs on lists the
// proxy, the job made on it is run; the runs list's Where column names the proxy, the run's header says
// "on proxy edge", and the daemon's run list agrees.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DaemonClient } from '../../source/client/index.ts'
import { requireTool, tempDir } from '../helpers/tools.ts'
import { Tmux, until } from '../helpers/tmux.ts'
import { startSshd, type Sshd } from '../helpers/sshd.ts'
import { bridgeKeyLine, startProxy, type ProxyProcess } from '../helpers/proxy.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
const lifeboat = join(root, 'bin/lifeboat.js')

function startLab(dataDir: string): Promise<{ child: ChildProcess; pools: Array<{ url: string; username: string; password: string }> }> {
  const child = spawn(process.execPath, [lifeboat, 'lab', 'serve', '--fixture', 'tiny', '--json', '--data', dataDir], { stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    child.once('exit', code => reject(new Error(`the lab exited (${code}) before listening`)))
    createInterface({ input: child.stdout! }).once('line', line => resolve({ child, pools: JSON.parse(line).pools }))
  })
}

test('e2e in tmux: the wizard offers the proxy, the job made on it runs there; the runs list and the run say where', { timeout: 240_000 }, async context => {
  requireTool('tmux', 'tmux')
  const dir = await tempDir('lifeboat-tui-proxy-')
  const socket = join(dir.path, 'lifeboat.sock')
  const children: ChildProcess[] = []
  const tmux = new Tmux(`lifeboat-proxy-${process.pid}`)
  let client: DaemonClient | undefined
  let sshd: Sshd | undefined
  let proxy: ProxyProcess | undefined
  try {
    const lab = await startLab(join(dir.path, 'lab'))
    children.push(lab.child)
    sshd = await startSshd(join(dir.path, 'sshd'))
    proxy = await startProxy(join(dir.path, 'proxy'))
    const daemon = spawn(process.execPath, [lifeboat, 'daemon', '--data', join(dir.path, 'state'), '--socket', socket], { stdio: 'ignore' })
    children.push(daemon)
    await until('the daemon socket', () => (existsSync(socket) ? true : undefined))
    client = await DaemonClient.connect(socket)
    const pool = lab.pools[0]!
    await client.call('pool.add', { url: pool.url, username: pool.username, password: pool.password })
    await mkdir(join(dir.path, 'remote'))
    await client.call('remote.add', { name: 'lab', url: `file://${join(dir.path, 'remote')}` })
    const { publicKey } = await client.call('proxy.key', {})
    await sshd.authorize([bridgeKeyLine(publicKey, proxy.dataDir)])
    const added = await client.call('proxy.add', { name: 'edge', url: `ssh://${sshd.user}@127.0.0.1:${sshd.port}` })
    assert.ok(added.test !== undefined, `the proxy answers its first test: ${JSON.stringify(added)}`)
    await until('the pool VMs', async () => ((await client!.call('vm.list')).length > 0 ? true : undefined))

    tmux.start(`CI=false ${process.execPath} --import tsx ${join(root, 'test/tui/start-tui.ts')} ${socket}`)
    await tmux.waitFor('No jobs yet')
    await tmux.press(['n'], '[Job]')
    tmux.type('far')
    await tmux.press(['Down', 'Down', 'Down'], /› Runs on +‹ the appliance \(none\) ›/)
    const offered = await tmux.waitFor(/Registered: edge/)
    context.diagnostic(`the wizard's Runs on:\n${offered}`)
    assert.match(offered.replace(/\s+/g, ' '), new RegExp(`Registered: edge \\(ssh://${sshd.user}@127\\.0\\.0\\.1:${sshd.port}\\)`))
    await tmux.press(['Right'], '‹ edge ›')
    await tmux.press(['Enter'], 'Smart selection')
    await tmux.press(['Enter'], '[Where]')
    await tmux.waitFor(/\[ \] remote lab/)
    await tmux.press(['Space'], /\[x\] remote lab/)
    await tmux.press(['Enter'], '[When]')
    await tmux.press(['Enter'], '[How]')
    const review = await tmux.press(['Enter'], 'Press enter to save')
    assert.match(review, /Runs on: proxy edge/)
    await tmux.press(['Enter'], 'create far: done')
    const jobs = await tmux.waitFor(/› +far .*on edge:/)
    context.diagnostic(`the jobs list:\n${jobs}`)
    const [info] = await client.call('job.list', {})
    assert.equal(info!.job.proxy, 'edge')

    await tmux.press(['r'], 'run far: started')
    tmux.keys(':')
    tmux.type('runs')
    await tmux.press(['Enter'], 'Lifeboat ▸ Runs')
    const runs = await tmux.waitFor(/✔ success +- +far \(daily\) +edge +\d\d-\d\d/, 120_000)
    context.diagnostic(`the runs list:\n${runs}`)
    assert.match(runs, /Status +Check +Job +Where +Started/)
    const run = await tmux.press(['Enter'], /✔ success backup far on proxy edge · started/)
    context.diagnostic(`the run:\n${run}`)
    assert.match(run, /▾ ✔ backup run on proxy edge +\d/)
    const [summary] = await client.call('run.list', { limit: 1 })
    assert.deepEqual([summary!.proxy, summary!.status], ['edge', 'success'])
  } finally {
    tmux.kill()
    client?.close()
    await proxy?.stop()
    await sshd?.stop()
    for (const child of children) child.kill('SIGTERM')
    await Promise.all(children.map(child => new Promise(resolve => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)))))
    await dir.cleanup()
  }
})
