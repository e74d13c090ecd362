import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { formatRemoteUrl, parseRemoteUrl, redactRemoteUrl, type RemoteUrl } from '../../source/storage/index.ts'

// Golden vectors from Xen Orchestra's xo-remote-parser tests: valid in both directions.
const BOTH: Array<[string, string, RemoteUrl]> = [
  ['file', 'file:///var/lib/xoa/backup', { type: 'file', path: '/var/lib/xoa/backup', options: {} }],
  ['file with option', 'file:///var/lib/xoa/backup?useVhdDirectory=true', { type: 'file', path: '/var/lib/xoa/backup', options: { useVhdDirectory: true } }],
  [
    'smb, password with ":" and "@"',
    'smb://Administrator:pas:sw@ord@toto\\\\192.168.100.225\\smb\0',
    { type: 'smb', host: '192.168.100.225\\smb', path: '', domain: 'toto', username: 'Administrator', password: 'pas:sw@ord', options: {} },
  ],
  [
    'smb with option',
    'smb://Administrator:pas:sw@ord@toto\\\\192.168.100.225\\smb\0?useVhdDirectory=true',
    { type: 'smb', host: '192.168.100.225\\smb', path: '', domain: 'toto', username: 'Administrator', password: 'pas:sw@ord', options: { useVhdDirectory: true } },
  ],
  ['smb with sub-folders', 'smb://u:p@D\\\\host\\share\0sub\\dir', { type: 'smb', host: 'host\\share', path: 'sub\\dir', domain: 'D', username: 'u', password: 'p', options: {} }],
  ['nfs', 'nfs://192.168.100.225:/media/nfs', { type: 'nfs', host: '192.168.100.225', path: '/media/nfs', options: {} }],
  ['nfs with port', 'nfs://192.168.100.225:20:/media/nfs', { type: 'nfs', host: '192.168.100.225', port: '20', path: '/media/nfs', options: {} }],
  ['nfs with port and option', 'nfs://192.168.100.225:20:/media/nfs?useVhdDirectory=true', { type: 'nfs', host: '192.168.100.225', port: '20', path: '/media/nfs', options: { useVhdDirectory: true } }],
  [
    's3, encoded secret',
    's3://AKIAS:XSuBupZ0mJlu%2B@s3-us-west-2.amazonaws.com/test-bucket/dir?allowUnauthorized=false',
    { type: 's3', protocol: 'https', host: 's3-us-west-2.amazonaws.com', path: '/test-bucket/dir', username: 'AKIAS', password: 'XSuBupZ0mJlu+', options: { allowUnauthorized: false } },
  ],
  [
    's3+http with JSON options and region',
    's3+http://Administrator:password@192.168.100.225/bucket/dir?compressionType=%22brotli%22&compressionOptions=%7B%22level%22%3A1%7D#reg1',
    { type: 's3', protocol: 'http', host: '192.168.100.225', path: '/bucket/dir', region: 'reg1', username: 'Administrator', password: 'password', options: { compressionType: 'brotli', compressionOptions: { level: 1 } } },
  ],
  [
    's3, keys full of separators',
    's3://a%40b%2Fc%2Bd%3Ae%3D%3A%2F%2F%20:e%40d%2Fc%2Bb%3Aa%3Ds%3A%2F%2F%20@s3-us-west-2.amazonaws.com/test-bucket/dir?allowUnauthorized=false',
    { type: 's3', protocol: 'https', host: 's3-us-west-2.amazonaws.com', path: '/test-bucket/dir', username: 'a@b/c+d:e=:// ', password: 'e@d/c+b:a=s:// ', options: { allowUnauthorized: false } },
  ],
  [
    'azure',
    'azure://username:%2FpAssWord%3D%3D@username.blob.core.windows.net/xodev/newfolder/from/bob',
    { type: 'azure', protocol: 'https', host: 'username.blob.core.windows.net', port: '', path: '/xodev/newfolder/from/bob', username: 'username', password: '/pAssWord==', options: {} },
  ],
  [
    'azurite https with port',
    'azurite://devstoreaccount1:Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq%2FK1SZFPTOtr%2FKBHBeksoGMGw%3D%3D@127.0.0.1:10000/xodevtest/folder/subfolder',
    { type: 'azurite', protocol: 'https', host: '127.0.0.1:10000', port: '10000', path: '/xodevtest/folder/subfolder', username: 'devstoreaccount1', password: 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==', options: {} },
  ],
  [
    'azurite http',
    'azurite+http://devstoreaccount1:key%2B@127.0.0.1:10000/xodevtest/folder',
    { type: 'azurite', protocol: 'http', host: '127.0.0.1:10000', port: '10000', path: '/xodevtest/folder', username: 'devstoreaccount1', password: 'key+', options: {} },
  ],
]

// Accepted when reading (legacy or hand-written), never produced.
const PARSE_ONLY: Array<[string, string, RemoteUrl]> = [
  ['file without leading slash', 'file://var/lib/xoa/backup', { type: 'file', path: '/var/lib/xoa/backup', options: {} }],
  ['nfs without leading slash', 'nfs://192.168.100.225:media/nfs', { type: 'nfs', host: '192.168.100.225', path: '/media/nfs', options: {} }],
  ['smb without path', 'smb://Administrator:pas:sw@ord@toto\\\\192.168.100.225\\smb', { type: 'smb', host: '192.168.100.225\\smb', path: '', domain: 'toto', username: 'Administrator', password: 'pas:sw@ord', options: {} }],
  ['smb without a password (given aside: --secret-*, the prompt)', 'smb://backup@WORKGROUP\\\\nas\\backups', { type: 'smb', host: 'nas\\backups', path: '', domain: 'WORKGROUP', username: 'backup', password: '', options: {} }],
  ['smb without a password, a user@realm', 'smb://backup@corp.example@CORP\\\\nas:4445\\backups\0a', { type: 'smb', host: 'nas:4445\\backups', path: 'a', domain: 'CORP', username: 'backup@corp.example', password: '', options: {} }],
  ['s3 with empty region', 's3://AKIAS:XSuBupZ0mJlu%2B@s3-us-west-2.amazonaws.com/test-bucket/dir#', { type: 's3', protocol: 'https', host: 's3-us-west-2.amazonaws.com', path: '/test-bucket/dir', username: 'AKIAS', password: 'XSuBupZ0mJlu+', options: {} }],
  ['non-JSON option kept as a string', 'file:///b?encryptionKey=notjson', { type: 'file', path: '/b', options: { encryptionKey: 'notjson' } }],
  ['empty option value read as false (XO #6270)', 'file:///b?useVhdDirectory=', { type: 'file', path: '/b', options: { useVhdDirectory: false } }],
]

for (const [name, url, remote] of BOTH) {
  test(`parse: ${name}`, () => assert.deepEqual(parseRemoteUrl(url), remote))
  test(`format: ${name}`, () => assert.equal(formatRemoteUrl(remote), url))
}
for (const [name, url, remote] of PARSE_ONLY) test(`parse (legacy): ${name}`, () => assert.deepEqual(parseRemoteUrl(url), remote))

test('invalid URLs are refused with REMOTE_BAD_URL and no secret in the message', () => {
  for (const url of ['ftp://h/x', 'no scheme', 'smb://not-a-valid-smb-url', 'nfs://hostonly', 's3://k:se%ZZcret@host/b', 'file://' + 'x'.repeat(10_000)]) {
    assert.throws(() => parseRemoteUrl(url), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'REMOTE_BAD_URL')
      assert.doesNotMatch(error.message, /secret/)
      return true
    })
  }
})

test('redactRemoteUrl hides passwords, keys and encryption keys, keeps the rest', () => {
  assert.equal(redactRemoteUrl('s3://AKIAS:XSuBupZ0mJlu%2B@host/bucket/dir#eu'), 's3://AKIAS:***@host/bucket/dir#eu')
  assert.equal(redactRemoteUrl('smb://Administrator:pas:sw@ord@toto\\\\h\\share\0a'), 'smb://Administrator:***@toto\\\\h\\share\0a')
  assert.equal(redactRemoteUrl('azure://acct:%2Fkey%3D%3D@acct.blob.core.windows.net/c/p'), 'azure://acct:***@acct.blob.core.windows.net/c/p')
  assert.equal(redactRemoteUrl('file:///b?encryptionKey=%22s3cr3t%22&useVhdDirectory=true'), 'file:///b?encryptionKey=%22***%22&useVhdDirectory=true')
  assert.equal(redactRemoteUrl('nfs://h:/e'), 'nfs://h:/e')
  assert.equal(redactRemoteUrl('s3://k:se%ZZcret@host/b'), 's3://***')
})

test('property: format then parse is the identity on SMB and NFS remotes (what the TUI form builds)', () => {
  const segment = fc.stringMatching(/^[A-Za-z0-9_-][A-Za-z0-9._ -]{0,11}$/).map(s => s.trim()).filter(s => s !== '')
  const host = fc.oneof(fc.domain(), fc.ipV4())
  const port = fc.option(fc.integer({ min: 1, max: 65535 }).map(String), { nil: undefined })
  fc.assert(
    fc.property(
      fc.stringMatching(/^[^:\0]{1,20}$/),
      fc.string({ maxLength: 20 }).filter(p => !p.includes('\0')),
      fc.stringMatching(/^[A-Za-z0-9.-]{1,15}$/),
      host,
      port,
      segment,
      fc.array(segment, { maxLength: 3 }),
      (username, password, domain, name, smbPort, share, sub) => {
        const smb: RemoteUrl = { type: 'smb', username, password, domain, host: `${name}${smbPort === undefined ? '' : `:${smbPort}`}\\${share}`, path: sub.join('\\'), options: {} }
        assert.deepEqual(parseRemoteUrl(formatRemoteUrl(smb)), smb)
      },
    ),
  )
  fc.assert(
    fc.property(host, port, fc.array(segment, { minLength: 1, maxLength: 4 }), fc.record({ uid: fc.nat(), gid: fc.nat(), mountPort: fc.integer({ min: 1, max: 65535 }) }, { requiredKeys: [] }).map(o => ({ ...o })), (name, nfsPort, segments, options) => {
      const nfs: RemoteUrl = { type: 'nfs', host: name, ...(nfsPort !== undefined && { port: nfsPort }), path: `/${segments.join('/')}`, options }
      assert.deepEqual(parseRemoteUrl(formatRemoteUrl(nfs)), nfs)
    }),
  )
})

test('property: format then parse is the identity on S3 and Azure credentials and paths', () => {
  const text = fc.string({ minLength: 1, maxLength: 20 })
  const segment = fc.stringMatching(/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,11}$/)
  fc.assert(
    fc.property(text, text, fc.array(segment, { minLength: 1, maxLength: 4 }), fc.option(segment, { nil: undefined }), (username, password, segments, region) => {
      const s3: RemoteUrl = { type: 's3', protocol: 'https', host: 'minio.local:9000', path: `/${segments.join('/')}`, username, password, ...(region !== undefined && { region }), options: {} }
      assert.deepEqual(parseRemoteUrl(formatRemoteUrl(s3)), s3)
      const azure: RemoteUrl = { type: 'azure', protocol: 'https', host: 'acct.blob.core.windows.net', port: '', path: `/${segments.join('/')}`, username, password, options: {} }
      assert.deepEqual(parseRemoteUrl(formatRemoteUrl(azure)), azure)
    }),
  )
})
