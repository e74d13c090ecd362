// Where a benchmark's time goes: a V8 CPU profile (node --cpu-prof) summed by stage — HTTP parsing, VHD
// parsing and writing, hashing, buffer copies, file writes and reads, streams and per-chunk promises, task
// events, progress updates, garbage collection, idle (waiting on I/O) — each sample given to the nearest frame
// on its stack that names a stage. `npm run bench -- --profile` prints one such line per measured process.
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'

interface ProfileNode { id: number; callFrame: { functionName: string; url: string }; hitCount?: number; children?: number[] }

/** Stages in the order they are tried on a frame: the first that matches names it. */
const STAGES: Array<[string, (name: string, url: string) => boolean]> = [
  ['idle (waiting on I/O)', name => name === '(idle)'],
  ['garbage collection', name => name === '(garbage collector)'],
  ['hashing', (name, url) => /xxhash|hash/i.test(url) || /^(update|digest|h64|xxh)/.test(name)],
  ['task events', (_, url) => url.includes('/source/tasks/')],
  ['progress updates', (name, url) => url.includes('/targets/progress.ts') || url.includes('/xapi/slots.ts') || /report|ProgressMeter/.test(name)],
  ['HTTP parsing', (name, url) => /_http_(common|incoming|client|outgoing)|node:http/.test(url) || /^parserOn|^execute$/.test(name)],
  ['VHD parsing and writing', (_, url) => url.includes('/formats/vhd/')],
  ['XVA (tar) parsing and writing', (_, url) => url.includes('/formats/xva/')],
  ['buffer copies', (name, url) => url === 'node:buffer' || /^(concat|copy|_copy|_copyActual|allocUnsafe|fill|from|subarray)$/.test(name)],
  ['file writes and reads', (name, url) => url.startsWith('node:internal/fs') || /^(writeBuffer|writeBuffers|read|writev|fsync|fdatasync|close|open)$/.test(name)],
  ['streams, for await and promises', (_, url) => url.startsWith('node:internal/streams') || url === 'node:stream' || url.includes('promises')],
  ['the engine', (_, url) => url.includes('/source/engine/') || url.includes('/source/repository/') || url.includes('/source/xapi/') || url.includes('/source/storage/')],
  ['the lab', (_, url) => url.includes('/source/lab/')],
  ['loading code (tsx, esbuild)', (_, url) => /tsx|esbuild|node:internal\/modules/.test(url)],
  ['native, unattributed', name => name === '(program)' || name === '(root)'],
]

/** Shares of the profile's samples by stage, largest first. */
export function stagesOf(profile: { nodes: ProfileNode[] }): Array<{ stage: string; share: number }> {
  const parent = new Map<number, ProfileNode>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node)
  const totals = new Map<string, number>()
  let all = 0
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0
    if (hits === 0) continue
    all += hits
    let stage = 'other JavaScript'
    for (let frame: ProfileNode | undefined = node; frame !== undefined; frame = parent.get(frame.id)) {
      const found = STAGES.find(([, match]) => match(frame!.callFrame.functionName, frame!.callFrame.url))
      if (found !== undefined) {
        stage = found[0]
        break
      }
    }
    totals.set(stage, (totals.get(stage) ?? 0) + hits)
  }
  return [...totals].map(([stage, hits]) => ({ stage, share: hits / Math.max(1, all) })).sort((a, b) => b.share - a.share)
}

/**
 * The stage split of a process's main thread (its profile file names thread 0; tsx's loader runs on another),
 * without the time spent loading code, which is said apart.
 */
export async function describeProfiles(dir: string): Promise<string> {
  const main = (await readdir(dir)).filter(n => /\.0\.\d+\.cpuprofile$/.test(n)).sort()[0]
  if (main === undefined) return 'no profile written'
  const stages = stagesOf(JSON.parse(await readFile(join(dir, main), 'utf8')) as { nodes: ProfileNode[] })
  const loading = stages.find(s => s.stage.startsWith('loading code'))?.share ?? 0
  const rest = stages.filter(s => !s.stage.startsWith('loading code') && s.share / (1 - loading) >= 0.01)
  return `${rest.map(s => `${s.stage} ${((s.share / (1 - loading)) * 100).toFixed(0)}%`).join(', ')} (besides ${(loading * 100).toFixed(0)}% loading code)`
}
