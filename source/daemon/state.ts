// The daemon's lasting state: pools, remotes, proxies, jobs and the run index in <data>/state.json, secrets
// (pool passwords, remote URLs with their keys) in <data>/secrets.json; both lowdb, mode 0600, atomic.
import { mkdir, readFile, rename, unlink, writeFile, chmod } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { basename, dirname, join } from 'node:path'
import { Low, type Adapter } from 'lowdb'
import { LifeboatError } from '../util/errors.ts'
import type { Job } from '../protocol/job.ts'
import type { RunSummary, VerificationState } from '../protocol/methods.ts'

export interface StoredPool {
  id: string
  name: string
  url: string
  username: string
}

export interface StoredRemote {
  name: string
  /** Redacted: the URL with its secrets is in secrets.json. */
  url: string
  /** The proxy the remote lives on: its URL is opened there, and the appliance works on it over the proxy's channel. */
  proxy?: string
}

/** A proxy jobs can run on: ssh://user@host[:port]; its pinned host keys are in <data>/ssh/known_hosts. */
export interface StoredProxy {
  name: string
  url: string
  fingerprint: string
  addedAt: number
}

export interface StoredJob {
  job: Job
  enabled: boolean
}

export interface DaemonSettings {
  /** Run logs kept per job (and for restores, together); older ones are deleted. */
  keepRunsPerJob: number
  /** Plans each scheduled run first and puts the plan at the head of its log (absent: yes). */
  planScheduledRuns?: boolean
}

export interface StateData {
  version: 1
  settings: DaemonSettings
  pools: StoredPool[]
  remotes: StoredRemote[]
  proxies: StoredProxy[]
  jobs: StoredJob[]
  /** Newest last. */
  runs: RunSummary[]
  /** The last verification of each backup: remote name → backup id → state. Verify never writes on the remote. */
  verifications: Record<string, Record<string, VerificationState>>
}

export interface SecretsData {
  pools: Record<string, { password: string }>
  remotes: Record<string, { url: string }>
}

/** How long updateSoon gathers changes before it writes them. */
const SOON_MS = 500

const EMPTY_STATE = (): StateData => ({ version: 1, settings: { keepRunsPerJob: 100 }, pools: [], remotes: [], proxies: [], jobs: [], runs: [], verifications: {} })
const EMPTY_SECRETS = (): SecretsData => ({ pools: {}, remotes: {} })

/** lowdb's adapter, atomic (temporary file + rename) with mode 0600, writes applied in order. */
class PrivateJsonFile<T> implements Adapter<T> {
  #queue: Promise<unknown> = Promise.resolve()

  constructor(private readonly path: string) {}

  async read(): Promise<T | null> {
    let text: string
    try {
      text = await readFile(this.path, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw error
    }
    // Tighten files an older version or a person left readable.
    await chmod(this.path, 0o600).catch(() => {})
    try {
      return JSON.parse(text) as T
    } catch (error) {
      throw new LifeboatError('STATE_CORRUPT', `${this.path} is not valid JSON; restore it from a backup copy or move it away to start with an empty state.`, { cause: error })
    }
  }

  write(data: T): Promise<void> {
    const text = JSON.stringify(data, null, 2)
    const next = this.#queue.then(async () => {
      const temporary = join(dirname(this.path), `.${basename(this.path)}.${randomBytes(4).toString('hex')}.tmp`)
      try {
        await writeFile(temporary, text, { mode: 0o600 })
        await rename(temporary, this.path)
      } catch (error) {
        await unlink(temporary).catch(() => {})
        throw error
      }
    })
    this.#queue = next.catch(() => {})
    return next
  }
}

export class DaemonState {
  private constructor(
    private readonly state: Low<StateData>,
    private readonly secrets: Low<SecretsData>,
  ) {}

  static async open(dataDir: string): Promise<DaemonState> {
    await mkdir(dataDir, { recursive: true, mode: 0o700 })
    const state = new Low<StateData>(new PrivateJsonFile(join(dataDir, 'state.json')), EMPTY_STATE())
    const secrets = new Low<SecretsData>(new PrivateJsonFile(join(dataDir, 'secrets.json')), EMPTY_SECRETS())
    await state.read()
    await secrets.read()
    state.data = { ...EMPTY_STATE(), ...state.data }
    secrets.data = { ...EMPTY_SECRETS(), ...secrets.data }
    return new DaemonState(state, secrets)
  }

  get data(): Readonly<StateData> {
    return this.state.data
  }

  #soon: Promise<void> | undefined

  /** Changes the state at once and writes it within a second: many changes in a row cost one write. */
  updateSoon(change: (data: StateData) => void): void {
    change(this.state.data)
    this.#soon ??= new Promise(resolve => setTimeout(resolve, SOON_MS).unref()).then(() => {
      this.#soon = undefined
      return this.state.write()
    })
    // A failed write is retried by the next one; update() reports its own.
    this.#soon.catch(() => {})
  }

  /** Changes the state and writes it; the change is visible at once, the promise resolves once on disk. */
  async update(change: (data: StateData) => void): Promise<void> {
    change(this.state.data)
    await this.state.write()
  }

  poolPassword(id: string): string | undefined {
    return this.secrets.data.pools[id]?.password
  }

  remoteUrl(name: string): string | undefined {
    return this.secrets.data.remotes[name]?.url
  }

  async updateSecrets(change: (data: SecretsData) => void): Promise<void> {
    change(this.secrets.data)
    await this.secrets.write()
  }
}
