// Windowed lists: only the rows that fit are rendered, so a 1000-row table costs what a 20-row one does.
// The cursor moves with arrows, j/k, g/G and PgUp/PgDn; the window follows it.
import { memo, useRef, useState } from 'react'
import { Box, Text, type Key } from 'ink'
import { fit } from '../format.ts'
import { tone, type Tone } from '../theme.ts'

export interface ListCursor {
  cursor: number
  offset: number
  /** Rows shown: the height given, less the line that counts the hidden ones when not all fit. */
  window: number
  count: number
  setCursor: (index: number) => void
  onKey: (input: string, key: Key) => boolean
}

export function useListCursor(count: number, height: number): ListCursor {
  const [wanted, setCursor] = useState(0)
  const offsetRef = useRef(0)
  const cursor = count === 0 ? 0 : Math.min(Math.max(0, wanted), count - 1)
  const rows = Math.max(1, count > height && height > 1 ? height - 1 : height)
  let offset = Math.min(offsetRef.current, Math.max(0, count - rows))
  if (cursor < offset) offset = cursor
  if (cursor >= offset + rows) offset = cursor - rows + 1
  offsetRef.current = offset
  const move = (to: number) => setCursor(Math.min(Math.max(0, to), Math.max(0, count - 1)))
  const onKey = (input: string, key: Key): boolean => {
    if (key.upArrow || input === 'k') move(cursor - 1)
    else if (key.downArrow || input === 'j') move(cursor + 1)
    else if (key.pageUp) move(cursor - rows)
    else if (key.pageDown) move(cursor + rows)
    else if (input === 'g' || key.home) move(0)
    else if (input === 'G' || key.end) move(count - 1)
    else return false
    return true
  }
  return { cursor, offset, window: rows, count, setCursor: move, onKey }
}

/** The cursor's mark at the start of a row: a glyph, so that it shows without colours or inverse video. */
export function cursorMark(selected: boolean): string {
  return selected ? '›' : ' '
}

/** "… 12 more (3 above)": how many rows the window hides; nothing when all fit. */
export function MoreLine({ list }: { list: ListCursor }) {
  const above = list.offset
  const below = Math.max(0, list.count - list.offset - list.window)
  if (above + below === 0) return null
  return (
    <Text dimColor wrap="truncate">
      … {above + below} more{above > 0 && below > 0 ? ` (${above} above, ${below} below)` : above > 0 ? ' above' : ''}
    </Text>
  )
}

export interface Cell {
  text: string
  tone?: Tone
}
export interface Column {
  title: string
  width: number
  align?: 'left' | 'right'
}

/** Widths of columns: fixed ones as given, width 0 shares what is left (at least 6 each). */
export function layoutColumns(columns: Column[], total: number): Column[] {
  const fixed = columns.reduce((sum, c) => sum + c.width, 0) + columns.length - 1
  const flexible = columns.filter(c => c.width === 0).length
  const share = flexible === 0 ? 0 : Math.max(6, Math.floor((total - fixed) / flexible))
  return columns.map(c => (c.width === 0 ? { ...c, width: share } : c))
}

const Row = memo(function Row({ cells, columns, selected }: { cells: Cell[]; columns: Column[]; selected: boolean }) {
  return (
    <Text wrap="truncate" inverse={selected}>
      {cursorMark(selected)}
      {cells.map((cell, i) => (
        <Text key={i} color={tone(cell.tone)}>
          {i < cells.length - 1 ? `${fit(cell.text, columns[i]?.width ?? 0, columns[i]?.align)} ` : fit(cell.text, columns[i]?.width ?? 0, columns[i]?.align).trimEnd()}
        </Text>
      ))}
    </Text>
  )
}, sameRow)

function sameRow(a: { cells: Cell[]; columns: Column[]; selected: boolean }, b: { cells: Cell[]; columns: Column[]; selected: boolean }): boolean {
  if (a.selected !== b.selected || a.columns !== b.columns || a.cells.length !== b.cells.length) return false
  return a.cells.every((cell, i) => cell.text === b.cells[i]!.text && cell.tone === b.cells[i]!.tone)
}

export interface TableProps<T> {
  columns: Column[]
  rows: readonly T[]
  cells: (row: T) => Cell[]
  rowKey: (row: T) => string
  list: ListCursor
  /** Rows available, header included. */
  height: number
  width: number
  empty?: string
}

export function Table<T>({ columns, rows, cells, rowKey, list, height, width, empty }: TableProps<T>) {
  const laidOut = useColumns(columns, width - 1)
  const visible = rows.slice(list.offset, list.offset + list.window)
  return (
    <Box flexDirection="column" height={height} overflow="hidden">
      <Text wrap="truncate" bold>
        {' ' + laidOut.map(c => fit(c.title, c.width, c.align)).join(' ')}
      </Text>
      {rows.length === 0 ? <Text dimColor>{empty ?? 'Nothing here.'}</Text> : null}
      {visible.map((row, i) => (
        <Row key={rowKey(row)} cells={cells(row)} columns={laidOut} selected={list.offset + i === list.cursor} />
      ))}
      <MoreLine list={list} />
    </Box>
  )
}

function useColumns(columns: Column[], width: number): Column[] {
  const memo = useRef<{ key: string; value: Column[] }>(undefined)
  const key = `${width}:${columns.map(c => `${c.title}/${c.width}`).join('|')}`
  if (memo.current?.key !== key) memo.current = { key, value: layoutColumns(columns, width) }
  return memo.current.value
}
