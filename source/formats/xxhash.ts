// XXH64 (seed 0) as XAPI writes it next to each XVA chunk: `sprintf "%016LX"`, 16 upper-case hex digits.
// The WebAssembly module is instantiated once, on first use.
import xxhash from 'xxhash-wasm'
import type { XXHashAPI } from 'xxhash-wasm'

let api: Promise<XXHashAPI> | undefined

export async function xxh64Hex(data: Uint8Array): Promise<string> {
  api ??= xxhash()
  const { h64Raw } = await api
  return h64Raw(data, 0n).toString(16).toUpperCase().padStart(16, '0')
}
