/**
 * A private redis-server for fault tests, on a free loopback port, never the shared one on 6379:
 * tests may pause, cut off or kill it. No persistence; pausing (SIGSTOP/SIGCONT) keeps its memory.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createConnection } from 'node:net'
import { freePort } from './upstream.ts'

export interface RedisServer {
  port: number
  url: string
  /** Freezes the process: connections stay open, nothing answers (a hung Redis). */
  pause(): void
  resume(): void
  stop(): Promise<void>
}

/** `args`: more redis-server options, e.g. `['--rename-command', 'CLIENT', '']`. */
export async function startRedisServer(args: string[] = []): Promise<RedisServer> {
  const port = await freePort()
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args],
    { stdio: 'ignore' }
  )
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const until = Date.now() + 10_000
  while (!(await answersPing(port))) {
    if (child.exitCode !== null || Date.now() > until) {
      child.kill('SIGKILL')
      throw new Error(`redis-server did not start on port ${port}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pause: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    async stop() {
      if (child.exitCode !== null) return
      child.kill('SIGCONT')
      child.kill('SIGKILL')
      await exited
    },
  }
}

function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' })
    socket.setTimeout(500, () => socket.destroy())
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', (data) => {
      resolve(data.toString().startsWith('+PONG'))
      socket.destroy()
    })
    socket.on('error', () => resolve(false))
    socket.on('close', () => resolve(false))
  })
}
