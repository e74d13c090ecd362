// XML-RPC on / (and /RPC2, /xmlrpc), for clients that do not speak JSON-RPC: XAPI wraps every answer in
// `{Status, Value}` or `{Status: 'Failure', ErrorDescription: [code, ...params]}`.
import { encodeXmlRpcResponse, parseXmlRpcCall } from '../formats/xmlrpc.ts'
import { toApiError } from './errors.ts'
import type { Toolstack } from './toolstack.ts'

export async function handleXmlRpc(xapi: Toolstack, body: Buffer): Promise<string> {
  try {
    const { method, params } = parseXmlRpcCall(body.toString('utf8'))
    const value = await xapi.call(method, params)
    return encodeXmlRpcResponse({ Status: 'Success', Value: value ?? '' })
  } catch (error) {
    const failure = toApiError(error)
    return encodeXmlRpcResponse({ Status: 'Failure', ErrorDescription: [failure.code, ...failure.params] })
  }
}
