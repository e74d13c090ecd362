// Rules for the tests themselves, read from their code. A failing `assert(x)` or `assert.ok(x)` with no message
// makes node 20 read the call site's source to build one; under tsx every call site is on line 1 of the
// transpiled code, node reads the .ts file at a wrong column and its findColumn() can recurse forever, so the
// failing test hangs the run instead of failing. Only ok()/assert() build their message from source:
// equal, deepEqual, match, throws & co. build it from the values, so they need no message.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const root = fileURLToPath(new URL('..', import.meta.url))

function files(dir: string): string[] {
  return readdirSync(dir).flatMap(name => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? files(path) : /\.m?tsx?$/.test(name) ? [path] : []
  })
}

/** The lines (1-based) of every ok()-style assertion in `text` that has no message argument. */
function unexplainedOks(fileName: string, text: string): number[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, fileName.endsWith('x') ? ts.ScriptKind.TSX : ts.ScriptKind.TS)
  // Local names bound to node's assert module (`assert`, `* as assert`) and to its ok-style functions.
  const modules = new Set<string>()
  const oks = new Set<string>()
  for (const statement of source.statements) {
    if (!ts.isImportDeclaration(statement) || !ts.isStringLiteral(statement.moduleSpecifier)) continue
    if (!/^(node:)?assert(\/strict)?$/.test(statement.moduleSpecifier.text)) continue
    const clause = statement.importClause
    if (clause?.name !== undefined) modules.add(clause.name.text)
    const bindings = clause?.namedBindings
    if (bindings !== undefined && ts.isNamespaceImport(bindings)) modules.add(bindings.name.text)
    if (bindings !== undefined && ts.isNamedImports(bindings)) {
      for (const element of bindings.elements) {
        const imported = (element.propertyName ?? element.name).text
        if (imported === 'ok' || imported === 'strict' || imported === 'default') oks.add(element.name.text)
      }
    }
  }
  const lines: number[] = []
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && isOk(node.expression) && node.arguments.length < 2 && !node.arguments.some(ts.isSpreadElement)) {
      lines.push(source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1)
    }
    ts.forEachChild(node, visit)
  }
  // `assert(x)`, `ok(x)`, `assert.ok(x)`, `assert.strict(x)`, `assert.strict.ok(x)`.
  const isOk = (callee: ts.Expression): boolean => {
    if (ts.isIdentifier(callee)) return modules.has(callee.text) || oks.has(callee.text)
    if (!ts.isPropertyAccessExpression(callee) || !['ok', 'strict'].includes(callee.name.text)) return false
    return isOk(callee.expression) || (ts.isIdentifier(callee.expression) && modules.has(callee.expression.text))
  }
  visit(source)
  return lines
}

test('the guard sees an assert() or assert.ok() without a message, and lets one with a message pass', () => {
  const text = [
    "import assert from 'node:assert/strict'",
    "import { ok as sure } from 'node:assert'",
    'assert(value)',
    "assert(value, 'the value is set')",
    'assert.ok(value)',
    "assert.ok(value, 'the value is set')",
    'sure(value)',
    'assert.strict.ok(value)',
    'assert.equal(a, b)',
    'other(value)',
  ].join('\n')
  assert.deepEqual(unexplainedOks('sample.ts', text), [3, 5, 7, 8])
})

test('every assert() and assert.ok() in the tests says what it expects (a failing one without a message can hang under tsx)', () => {
  const broken = files(join(root, 'test')).flatMap(file =>
    unexplainedOks(file, readFileSync(file, 'utf8')).map(line => `${relative(root, file)}:${line}`),
  )
  assert.deepEqual(broken, [], `give these a message saying what is expected:\n${broken.join('\n')}`)
})
