// smbd (test-infra.md §3) as a child process on a free loopback port, all its state in a scratch folder, with
// Samba's DEFAULT protocol settings (asynchronous I/O on, NTLMv1 off): only what running there needs is set.
import { execFile } from 'node:child_process'
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { formatRemoteUrl } from '../../source/storage/url.ts'
import type { ShareServer, ShareServerOptions } from './share-server.ts'
import { exportFolder, freePort, listening, logTail, requireRoot, runServer, waitUntil, type ExportedFolder } from './share-host.ts'
import { requireTool, run, tempDir } from './tools.ts'

export interface SambaOptions extends ShareServerOptions {
  /** `server signing = mandatory`: the client must sign every message. */
  signing?: 'mandatory'
  /** `smb encrypt = required`: a client that cannot encrypt is refused (Lifeboat's is, with a sentence). */
  encrypt?: 'required'
  /** More shares besides `backups` (each its own folder, see shareRoot), e.g. one per test. */
  extraShares?: string[]
}

export interface SambaServer extends ShareServer {
  readonly kind: 'smb'
  readonly port: number
  readonly user: string
  readonly password: string
  readonly domain: string
  /** The share urlFor points into. */
  readonly share: string
  /** urlFor in another share of this server. */
  urlForShare(share: string, sub: string, options?: Record<string, unknown>): string
  /** The folder a share exports, as this process sees it. */
  shareRoot(share: string): string
  /** Runs smbclient's commands (`-c`, e.g. 'put a b; get b c') on a share as the share user: the independent reader. */
  smbclient(commands: string, share?: string): Promise<{ stdout: string; stderr: string }>
}

export const SMB_USER = 'lifeboat-smb'
// No character XO's URL form or smbclient's auth file would need escaped.
export const SMB_PASSWORD = 'Lifeboat-Smb-7'
export const SMB_DOMAIN = 'WORKGROUP'
const SHARE = 'backups'

export async function startSamba(options: SambaOptions = {}): Promise<SambaServer> {
  requireTool('smbd', 'samba')
  requireTool('smbclient', 'smbclient')
  requireRoot('Samba')
  const uid = await shareUser()
  const scratch = await tempDir('lifeboat-samba-')
  // mkdtemp's 0700 would keep the share user out of its share.
  await chmod(scratch.path, 0o755)
  const shares = [SHARE, ...(options.extraShares ?? [])]
  const exported = await exportFolder(join(scratch.path, 'shares'), options.sizeLimitBytes)
  for (const share of shares) {
    await mkdir(join(exported.root, share))
    await chown(join(exported.root, share), uid, -1)
  }
  const port = await freePort()
  const config = join(scratch.path, 'smb.conf')
  await writeConfig(config, scratch.path, exported, port, shares, options)
  await run('smbpasswd', ['-c', config, '-s', '-a', SMB_USER], { input: Buffer.from(`${SMB_PASSWORD}\n${SMB_PASSWORD}\n`) })
  const auth = join(scratch.path, 'auth')
  await writeFile(auth, `username = ${SMB_USER}\npassword = ${SMB_PASSWORD}\ndomain = ${SMB_DOMAIN}\n`, { mode: 0o600 })
  const log = join(scratch.path, 'smbd.log')
  const life = await runServer(async () => {
    // Without --no-process-group smbd leads its own group: killing the group ends the per-connection children too.
    const smbd = exported.spawn('smbd', ['--foreground', `--configfile=${config}`, '--debug-stdout', '-d', '1'], log)
    await waitUntil(() => listening(port), smbd, async () => `smbd did not come up on port ${port}; the end of ${log}:\n${await logTail(log)}`)
    return smbd
  }, async () => {
    await exported.cleanup()
    await scratch.cleanup()
  })
  // XO's host part is host\\share; the port goes after the host, as in smbnetfs paths.
  const urlForShare = (share: string, sub: string, options: Record<string, unknown> = {}) =>
    formatRemoteUrl({ type: 'smb', username: SMB_USER, password: SMB_PASSWORD, domain: SMB_DOMAIN, host: `127.0.0.1:${port}\\${share}`, path: sub, options })
  return {
    kind: 'smb',
    root: join(exported.root, SHARE),
    port,
    user: SMB_USER,
    password: SMB_PASSWORD,
    domain: SMB_DOMAIN,
    share: SHARE,
    urlFor: (sub, query) => urlForShare(SHARE, sub, query),
    urlForShare,
    shareRoot: share => join(exported.root, share),
    smbclient: async (commands, share = SHARE) => {
      const args = ['-p', String(port), `//127.0.0.1/${share}`, '--authentication-file', auth, '-m', 'SMB3', '-c', commands]
      return await new Promise((resolve, reject) => {
        execFile('smbclient', args, { maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
          // smbclient prints its errors (NT_STATUS_…) on stdout: the error must carry them.
          if (error !== null) reject(new Error(`smbclient -c '${commands}' failed (${error.code}): ${`${stdout}\n${stderr}`.trim()}`))
          else resolve({ stdout, stderr })
        })
      })
    },
    ...life,
  }
}

async function writeConfig(config: string, scratch: string, exported: ExportedFolder, port: number, shares: string[], options: SambaOptions): Promise<void> {
  const dirs = ['private', 'lock', 'state', 'cache', 'pid', 'ncalrpc', 'log']
  for (const dir of dirs) await mkdir(join(scratch, dir))
  const global = [
    'interfaces = lo',
    'bind interfaces only = yes',
    `smb ports = ${port}`,
    'disable netbios = yes',
    'server role = standalone server',
    `private dir = ${join(scratch, 'private')}`,
    `lock directory = ${join(scratch, 'lock')}`,
    `state directory = ${join(scratch, 'state')}`,
    `cache directory = ${join(scratch, 'cache')}`,
    `pid directory = ${join(scratch, 'pid')}`,
    `ncalrpc dir = ${join(scratch, 'ncalrpc')}`,
    `log file = ${join(scratch, 'log', 'log.%m')}`,
    `passdb backend = tdbsam:${join(scratch, 'private', 'passdb.tdb')}`,
    'load printers = no',
    'printcap name = /dev/null',
    'disable spoolss = yes',
    ...(options.signing === 'mandatory' ? ['server signing = mandatory'] : []),
    ...(options.encrypt === 'required' ? ['smb encrypt = required'] : []),
  ]
  const sections = shares.map(share => `[${share}]\npath = ${join(exported.path, share)}\nread only = no\nvalid users = ${SMB_USER}\n`)
  await writeFile(config, `[global]\n${global.join('\n')}\n\n${sections.join('\n')}`)
}

/** The share user's uid, created (no home, no shell) when missing; two test files may race to create it. */
async function shareUser(): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const uid = await run('id', ['-u', SMB_USER]).then(({ stdout }) => Number(stdout.toString().trim()), () => undefined)
    if (uid !== undefined) return uid
    const created = await run('useradd', ['-M', '-s', '/usr/sbin/nologin', SMB_USER]).then(() => undefined, (error: Error) => error)
    if (created !== undefined && attempt >= 5) throw new Error(`could not create the share user ${SMB_USER}: ${created.message}`)
    if (created !== undefined) await new Promise(resolve => setTimeout(resolve, 200))
  }
}
