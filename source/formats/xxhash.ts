// XXH64 (seed 0) as XAPI writes it next to each XVA chunk: `sprintf "%016LX"`, 16 upper-case hex digits; and the
// same hash as a function for the hot paths (VHD block hashes). The WebAssembly module is instantiated once, on first use.
import xxhash from 'xxhash-wasm'
import type { XXHashAPI } from 'xxhash-wasm'

let api: Promise<XXHashAPI> | undefined

export async function xxh64Hex(data: Uint8Array): Promise<string> {
  const h64 = await loadXxh64()
  return h64(data).toString(16).toUpperCase().padStart(16, '0')
}

/** XXH64 (seed 0) of a buffer, synchronous once loaded (the module copies the bytes into its memory; no JS copy). */
export async function loadXxh64(): Promise<(data: Uint8Array) => bigint> {
  api ??= xxhash()
  const { h64Raw } = await api
  return data => h64Raw(data, 0n)
}
