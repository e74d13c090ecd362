// Starts the TUI on a socket, as the bare `lifeboat` command will (the e2e test runs it inside tmux).
import { runTui } from '../../source/tui/main.tsx'

process.exitCode = await runTui({ socket: process.argv[2] ?? 'data/lifeboat.sock', readonly: process.argv.includes('--readonly') })
