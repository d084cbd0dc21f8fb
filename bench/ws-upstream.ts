/**
 * The WebSocket upstream of bench/websocket.ts in a process of its own (test/helpers/ws-upstream.ts:
 * `/ws/echo` echoes), so its sockets count against neither the BFF's memory nor the bench's file
 * descriptors.
 */
import { startWsUpstream } from '../test/helpers/ws-upstream.ts'
import { serveParent } from './child.ts'

const upstream = await startWsUpstream()
serveParent(upstream.url, { open: () => upstream.open() }, () => upstream.close())
