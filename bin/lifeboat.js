#!/usr/bin/env node
// The installed `lifeboat` command: runs cli.tsx through tsx's loader (no build step).
import { register } from 'tsx/esm/api'

register()
await import('../cli.tsx')
