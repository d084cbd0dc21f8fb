/**
 * A real local Redis Cluster (3 primaries, 3 replicas) and a Sentinel set-up (a primary, a replica
 * and sentinels) for tests, from the Debian `redis-server` package: every process on free loopback
 * ports, without persistence, in a temporary directory removed at `stop()`. A test file starts one
 * in `beforeAll` and stops it in `afterAll`; nothing is shared with the Redis on 6379.
 *
 * Short timeouts (`cluster-node-timeout`, `down-after-milliseconds`) make a failover take a few
 * seconds rather than the production defaults' 15 to 30.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { freePort } from './upstream.ts'

const run = promisify(execFile)

export interface RedisNode {
  port: number
  /** `redis://127.0.0.1:<port>` */
  url: string
  /** Runs redis-cli against this node; answers its output, trimmed. */
  cli(...args: string[]): Promise<string>
  /** SIGKILL: the node is gone at once, as a crashed host. */
  kill(): Promise<void>
  /** Freezes the process (SIGSTOP): connections stay open and nothing answers. */
  pause(): void
  resume(): void
  readonly alive: boolean
}

export interface LocalRedisCluster {
  nodes: RedisNode[]
  /** The seed list as `BFF_REDIS_URL` takes it in cluster mode: every node, comma-separated. */
  seeds: string
  /** The temporary directory of the nodes' files, removed by `stop()`. */
  dir: string
  /** The node serving `key`'s slot as primary now. */
  primaryOf(key: string): Promise<RedisNode>
  /** The replicas of a primary, by the cluster's current view. */
  replicasOf(primary: RedisNode): Promise<RedisNode[]>
  /** Waits until every live node says `cluster_state:ok` and agrees on the primaries. */
  waitHealthy(timeoutMs?: number): Promise<void>
  stop(): Promise<void>
}

export interface LocalSentinel {
  primary: RedisNode
  replica: RedisNode
  sentinels: RedisNode[]
  /** The name the sentinels monitor the primary by (BFF_REDIS_SENTINEL_NAME). */
  name: string
  /** Every sentinel, comma-separated, as `BFF_REDIS_URL` takes them in sentinel mode. */
  urls: string
  /** The address the sentinels give as primary now, e.g. `127.0.0.1:6390`. */
  currentPrimary(): Promise<string>
  stop(): Promise<void>
}

async function startNode(
  dir: string,
  name: string,
  args: string[],
  binary = 'redis-server'
): Promise<RedisNode & { child: ChildProcess }> {
  const port = await freePort()
  const home = path.join(dir, name)
  await run('mkdir', ['-p', home])
  const child = spawn(
    binary,
    [
      ...args,
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      home,
      '--save',
      '',
      '--appendonly',
      'no',
      '--logfile',
      path.join(home, 'log'),
    ],
    { stdio: 'ignore' }
  )
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const cli = async (...command: string[]) => {
    const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...command], {
      timeout: 10_000,
    })
    return stdout.trim()
  }
  const until = Date.now() + 10_000
  for (;;) {
    const pong = await cli('PING').catch(() => '')
    if (pong === 'PONG') break
    if (child.exitCode !== null || Date.now() > until) {
      child.kill('SIGKILL')
      throw new Error(`${binary} ${name} did not start on port ${port}`)
    }
    await sleep(50)
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    child,
    cli,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGCONT')
      child.kill('SIGKILL')
      await exited
    },
    pause: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    get alive() {
      return child.exitCode === null && child.signalCode === null
    },
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * Starts 6 cluster-enabled redis-servers and joins them with `redis-cli --cluster create
 * --cluster-replicas 1`: 3 primaries with one replica each, slots split evenly.
 */
export async function startRedisCluster(
  options: { nodeTimeoutMs?: number } = {}
): Promise<LocalRedisCluster> {
  const dir = await mkdtemp(path.join(tmpdir(), 'bff-redis-cluster-'))
  const nodes: Array<RedisNode & { child: ChildProcess }> = []
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.kill()))
    await rm(dir, { recursive: true, force: true })
  }
  try {
    // Redis 7 lets the bus port be chosen too: the default (port + 10000) may be taken.
    const { stdout: version } = await run('redis-server', ['--version'])
    const major = Number(/v=(\d+)/.exec(version)?.[1] ?? 0)
    for (let i = 0; i < 6; i++) {
      const bus = major >= 7 ? ['--cluster-port', String(await freePort())] : []
      nodes.push(
        await startNode(dir, `node-${i}`, [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          path.join(dir, `node-${i}`, 'nodes.conf'),
          ...bus,
          '--cluster-node-timeout',
          String(options.nodeTimeoutMs ?? 1000),
          // A replica whose primary has been away a while still takes over (a test kills both
          // quickly); and a cluster with an uncovered slot still serves the others.
          '--cluster-replica-validity-factor',
          '0',
          '--cluster-require-full-coverage',
          'no',
        ])
      )
    }
    await run(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...nodes.map((node) => `127.0.0.1:${node.port}`),
        '--cluster-replicas',
        '1',
        '--cluster-yes',
      ],
      { timeout: 30_000 }
    )
  } catch (err) {
    await stop()
    throw err
  }

  async function view(from: RedisNode) {
    // `<id> <ip:port@bus> <flags> <primary id> ... <slots>`
    const lines = (await from.cli('CLUSTER', 'NODES')).split('\n')
    return lines.map((line) => {
      const [id, address, flags, primaryId, , , , , ...slots] = line.split(' ')
      const port = Number(address!.split('@')[0]!.split(':')[1])
      return { id: id!, port, flags: flags!.split(','), primaryId: primaryId!, slots }
    })
  }
  const live = () => nodes.filter((node) => node.alive)
  const byPort = (port: number) => nodes.find((node) => node.port === port)!

  const cluster: LocalRedisCluster = {
    nodes,
    seeds: nodes.map((node) => node.url).join(','),
    dir,
    async primaryOf(key) {
      const slot = Number(await live()[0]!.cli('CLUSTER', 'KEYSLOT', key))
      for (const entry of await view(live()[0]!)) {
        if (!entry.flags.includes('master') || entry.flags.includes('fail')) continue
        for (const range of entry.slots) {
          const [from, to = from] = range.split('-').map(Number)
          if (slot >= from! && slot <= to!) return byPort(entry.port)
        }
      }
      throw new Error(`no primary serves slot ${slot}`)
    },
    async replicasOf(primary) {
      const entries = await view(live()[0]!)
      const id = entries.find((entry) => entry.port === primary.port)!.id
      return entries
        .filter((entry) => entry.primaryId === id && !entry.flags.includes('fail'))
        .map((entry) => byPort(entry.port))
    },
    async waitHealthy(timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs
      for (;;) {
        const states = await Promise.all(
          live().map((node) => node.cli('CLUSTER', 'INFO').catch(() => ''))
        )
        if (states.every((info) => info.includes('cluster_state:ok'))) {
          // Every live node agrees on three reachable primaries covering all slots.
          const views = await Promise.all(live().map((node) => view(node).catch(() => [])))
          const primaries = views.map((entries) =>
            entries
              .filter((e) => e.flags.includes('master') && !e.flags.includes('fail'))
              .filter((e) => e.slots.length > 0 && byPort(e.port).alive)
              .map((e) => e.port)
              .sort()
              .join(',')
          )
          if (primaries[0]!.split(',').length === 3 && new Set(primaries).size === 1) return
        }
        if (Date.now() > until) throw new Error('the Redis cluster did not become healthy')
        await sleep(100)
      }
    },
    stop,
  }
  try {
    await cluster.waitHealthy(30_000)
  } catch (err) {
    await stop()
    throw err
  }
  return cluster
}

/**
 * A primary, one replica and `sentinels` sentinels (default 1, quorum a majority) watching it
 * under `name`; sentinels declare the primary down after `downAfterMs` (default 1000).
 */
export async function startRedisSentinel(
  options: { sentinels?: number; downAfterMs?: number; name?: string } = {}
): Promise<LocalSentinel> {
  const dir = await mkdtemp(path.join(tmpdir(), 'bff-redis-sentinel-'))
  const name = options.name ?? 'bffprimary'
  const started: RedisNode[] = []
  const stop = async () => {
    await Promise.all(started.map((node) => node.kill()))
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const primary = await startNode(dir, 'primary', [])
    started.push(primary)
    const replica = await startNode(dir, 'replica', [
      '--replicaof',
      '127.0.0.1',
      String(primary.port),
    ])
    started.push(replica)
    const count = options.sentinels ?? 1
    const quorum = Math.floor(count / 2) + 1
    const sentinels: RedisNode[] = []
    for (let i = 0; i < count; i++) {
      // A sentinel rewrites its config file as the set-up changes: it needs one of its own.
      const file = path.join(dir, `sentinel-${i}.conf`)
      await writeFile(
        file,
        [
          `sentinel monitor ${name} 127.0.0.1 ${primary.port} ${quorum}`,
          `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 1000}`,
          `sentinel failover-timeout ${name} 5000`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n')
      )
      const sentinel = await startNode(dir, `sentinel-${i}`, [file, '--sentinel'])
      started.push(sentinel)
      sentinels.push(sentinel)
    }
    const currentPrimary = async () => {
      for (const sentinel of sentinels.filter((s) => s.alive)) {
        const answer = await sentinel
          .cli('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)
          .catch(() => '')
        const [host, port] = answer.split('\n')
        if (host && port) return `${host}:${port}`
      }
      throw new Error('no sentinel knows the primary')
    }
    // Ready once the replica is in sync and every sentinel has found it.
    const until = Date.now() + 20_000
    for (;;) {
      const link = await replica.cli('INFO', 'replication').catch(() => '')
      const seen = await Promise.all(
        sentinels.map((s) => s.cli('SENTINEL', 'REPLICAS', name).catch(() => ''))
      )
      if (
        link.includes('master_link_status:up') &&
        seen.every((list) => list.includes(String(replica.port)))
      ) {
        break
      }
      if (Date.now() > until) throw new Error('the sentinel set-up did not become ready')
      await sleep(100)
    }
    return {
      primary,
      replica,
      sentinels,
      name,
      urls: sentinels.map((s) => s.url).join(','),
      currentPrimary,
      stop,
    }
  } catch (err) {
    await stop()
    throw err
  }
}
