// nfs-ganesha (test-infra.md §4) exporting a scratch folder over NFSv3/TCP on free loopback ports, one server
// per test file. ganesha v3 will not start unless it can register with the portmapper, which is machine-wide on
// port 111: rpcbind is started when nothing answers there and then left running for every later server.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { formatRemoteUrl } from '../../source/storage/url.ts'
import type { ShareServer, ShareServerOptions } from './share-server.ts'
import { exportFolder, freePort, listening, logTail, requireRoot, runServer, waitUntil } from './share-host.ts'
import { requireTool, run, tempDir } from './tools.ts'

export interface GaneshaServer extends ShareServer {
  readonly kind: 'nfs'
  /** The NFS port (XO's `nfs://host:PORT:/path`). */
  readonly port: number
  /** The MOUNT port (the URL's `mountPort` option). */
  readonly mountPort: number
  /** The exported folder as the server sees it: the path MOUNT is asked for. */
  readonly exportPath: string
  /** libnfs's URL of a file or folder of the export, for nfs-cp and nfs-ls (the independent reader). */
  libnfsUrl(sub: string): string
  /** Runs nfs-cp (either side a libnfsUrl or a local path). */
  nfsCp(from: string, to: string): Promise<void>
}

/** The EXPORT block's options (ganesha-export-config(8)); the default is read-write, no root squash, for 127.0.0.1. */
export interface GaneshaExportOptions {
  accessType?: 'RW' | 'RO'
  squash?: 'root_squash' | 'all_squash' | 'no_root_squash'
  anonUid?: number
  anonGid?: number
  /** true is a `secure` export: calls from ports above 1023 are refused. */
  privilegedPort?: boolean
  clients?: string
}

export interface GaneshaOptions extends ShareServerOptions {
  export?: GaneshaExportOptions
}

const PORTMAPPER = 111
// When two ganesha start at once, each unregisters the NFS programs and registers its own: the loser exits.
const REGISTER_ATTEMPTS = 5

export async function startGanesha(options: GaneshaOptions = {}): Promise<GaneshaServer> {
  requireTool('ganesha.nfsd', 'nfs-ganesha nfs-ganesha-vfs')
  requireTool('rpcbind', 'rpcbind')
  requireTool('nfs-cp', 'libnfs-utils')
  requireRoot('nfs-ganesha')
  await ensurePortmapper()
  const scratch = await tempDir('lifeboat-ganesha-')
  const exported = await exportFolder(join(scratch.path, 'export'), options.sizeLimitBytes)
  const port = await freePort()
  const mountPort = await freePort()
  const config = join(scratch.path, 'ganesha.conf')
  await mkdir(join(scratch.path, 'recovery'))
  await writeFile(config, [
    `NFS_CORE_PARAM { Bind_addr = 127.0.0.1; NFS_Port = ${port}; MNT_Port = ${mountPort}; Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; Protocols = 3; }`,
    `NFSV4 { RecoveryBackend = fs; RecoveryRoot = ${join(scratch.path, 'recovery')}; Graceless = true; }`,
    exportBlock(exported.path, options.export ?? {}),
    '',
  ].join('\n'))
  const log = join(scratch.path, 'ganesha.log')

  async function startOnce(): Promise<ChildProcess> {
    const offset = (await readFile(log, 'utf8').catch(() => '')).length
    const ganesha = exported.spawn('ganesha.nfsd', ['-F', '-f', config, '-L', log, '-p', join(scratch.path, 'ganesha.pid'), '-N', 'NIV_EVENT'], join(scratch.path, 'ganesha.out'))
    // Ready once it says so: it binds its ports before registering, and exits if registering fails.
    const initialized = async () => (await readFile(log, 'utf8').catch(() => '')).slice(offset).includes('NFS SERVER INITIALIZED')
    await waitUntil(initialized, ganesha, async () => `ganesha.nfsd did not come up on ports ${port} (NFS) and ${mountPort} (MOUNT); ${await logTail(join(scratch.path, 'ganesha.out'), 5)}\nthe errors of ${log}:\n${await errorLines(log, offset)}`)
    return ganesha
  }

  async function start(): Promise<ChildProcess> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await startOnce()
      } catch (error) {
        if (attempt === REGISTER_ATTEMPTS || !(error as Error).message.includes('Cannot register')) throw error
        await new Promise(resolve => setTimeout(resolve, 100 + Math.random() * 400))
      }
    }
  }

  const life = await runServer(start, async () => {
    await exported.cleanup()
    await scratch.cleanup()
  })
  const libnfsUrl = (sub: string) => `nfs://127.0.0.1${join(exported.path, sub)}?version=3&nfsport=${port}&mountport=${mountPort}`
  return {
    kind: 'nfs',
    root: exported.root,
    port,
    mountPort,
    exportPath: exported.path,
    urlFor: (sub, options = {}) => {
      // MOUNT is asked for the URL's path, which must exist: XO's NFS remotes are mounted folders too.
      mkdirSync(join(exported.root, sub), { recursive: true })
      return formatRemoteUrl({ type: 'nfs', host: '127.0.0.1', port: String(port), path: join(exported.path, sub), options: { mountPort, ...options } })
    },
    libnfsUrl,
    nfsCp: async (from, to) => {
      await run('nfs-cp', [from, to])
    },
    ...life,
  }
}

function exportBlock(path: string, options: GaneshaExportOptions): string {
  const anonymous = [
    ...(options.anonUid === undefined ? [] : [`Anonymous_Uid = ${options.anonUid};`]),
    ...(options.anonGid === undefined ? [] : [`Anonymous_Gid = ${options.anonGid};`]),
  ].join(' ')
  // The access options are the client's: a client outside the list then gets the export's Access_Type, None.
  return `EXPORT { Export_Id = 1; Path = ${path}; Pseudo = /backups; Protocols = 3; Transports = TCP; Access_Type = None; FSAL { Name = VFS; } ` +
    `CLIENT { Clients = ${options.clients ?? '127.0.0.1'}; Access_Type = ${options.accessType ?? 'RW'}; Squash = ${options.squash ?? 'No_Root_Squash'}; ${anonymous} PrivilegedPort = ${options.privilegedPort === true}; } }`
}

// The CRIT lines about DBus and Kerberos are in every log and harmless: leave them out of the error.
async function errorLines(log: string, offset: number): Promise<string> {
  const text = (await readFile(log, 'utf8').catch(() => '')).slice(offset)
  const lines = text.split('\n').filter(line => /:(CRIT|MAJ|FATAL) :/.test(line) && !/dbus|krb5|keytab|credentials for principal/i.test(line))
  return lines.slice(-10).join('\n') || (await logTail(log))
}

/** rpcbind on port 111, started (and left running for later servers) when nothing answers there. */
async function ensurePortmapper(): Promise<void> {
  if (await listening(PORTMAPPER)) return
  // `rpcbind -h 127.0.0.1` crashes (double free, test-infra.md §4); the plain one listens on every address.
  const rpcbind = spawn('rpcbind', ['-f', '-w'], { detached: true, stdio: 'ignore' })
  rpcbind.unref()
  let exited = false
  rpcbind.once('exit', () => (exited = true))
  const deadline = Date.now() + 30_000
  // Another test file may start its own at the same time: this one then exits, and theirs answers.
  while (!(await listening(PORTMAPPER))) {
    if (Date.now() > deadline) throw new Error(`rpcbind did not listen on port ${PORTMAPPER} within 30 s${exited ? ` (it exited ${rpcbind.exitCode ?? rpcbind.signalCode})` : ''}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}
