/**
 * A TCP relay on loopback that can be shut like a firewall: `close()` resets every connection and
 * refuses new ones, `open()` listens again on the same port. Put between a client and a server to
 * make the server unreachable without touching it (its memory survives).
 */
import { createConnection, createServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'

export interface TcpGate {
  port: number
  readonly isOpen: boolean
  open(): Promise<void>
  close(): Promise<void>
  dispose(): Promise<void>
}

export async function startTcpGate(targetPort: number, host = '127.0.0.1'): Promise<TcpGate> {
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const upstream = createConnection({ port: targetPort, host })
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
      socket.on('error', () => {
        client.destroy()
        upstream.destroy()
      })
    }
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  const port = (server.address() as AddressInfo).port
  let isOpen = true

  async function close() {
    if (!isOpen) return
    isOpen = false
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    for (const socket of sockets) socket.resetAndDestroy()
    await closed
  }

  return {
    port,
    get isOpen() {
      return isOpen
    },
    async open() {
      if (isOpen) return
      await new Promise<void>((resolve) => server.listen(port, host, resolve))
      isOpen = true
    },
    close,
    dispose: close,
  }
}
