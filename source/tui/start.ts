// `lifeboat [--socket PATH] [--readonly]`: the terminal UI's command line, before anything of Ink loads.
import { parseArgs } from 'node:util'
import { defaultSocketPath } from '../client/index.ts'

export async function main(args: string[]): Promise<number> {
  let values: { socket?: string; readonly?: boolean }
  try {
    values = parseArgs({ args, options: { socket: { type: 'string' }, readonly: { type: 'boolean' } }, allowPositionals: false }).values
  } catch (error) {
    process.stderr.write(`lifeboat: ${(error as Error).message}\nusage: lifeboat [--socket PATH] [--readonly]\n`)
    return 2
  }
  // React's production build: the development one doubles every redraw.
  process.env.NODE_ENV ??= 'production'
  const { runTui } = await import('./main.tsx')
  return runTui({ socket: values.socket ?? defaultSocketPath(), readonly: values.readonly === true })
}
