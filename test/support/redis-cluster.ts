import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createClient, type RedisClientType } from 'redis';
import { freePort, redisCliBinary, redisServerBinary } from './redis-server.js';

const HOST = '127.0.0.1';
const run = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface ClusterNode {
  readonly index: number;
  /** Chosen at start, kept for restarts. */
  port: number;
  busPort: number;
  url: string;
  /** Cluster node id (CLUSTER MYID). */
  id: string;
}

interface NodeProcess {
  child?: ChildProcess;
  /** A plain client to this one node, for CLUSTER INFO and the like; undefined while the node is down. */
  admin?: RedisClientType;
}

export interface RedisClusterOptions {
  masters?: number;
  replicasPerMaster?: number;
  /** cluster-node-timeout: how long a node may be silent before it is flagged as failing. Default 1000 ms. */
  nodeTimeoutMs?: number;
}

/**
 * A real Redis Cluster of throwaway redis-server (or valkey-server) processes
 * on 127.0.0.1, created the way an operator does it (`redis-cli --cluster
 * create ... --cluster-replicas 1`), nothing saved to disk. A node can be
 * killed (SIGKILL, a crash) and started again on its port with its node
 * config, where it rejoins as a replica.
 */
export class RedisCluster {
  readonly nodes: ClusterNode[];
  readonly #processes = new Map<ClusterNode, NodeProcess>();
  readonly #dir: string;
  readonly #nodeTimeoutMs: number;

  private constructor(nodes: ClusterNode[], dir: string, nodeTimeoutMs: number) {
    this.nodes = nodes;
    this.#dir = dir;
    this.#nodeTimeoutMs = nodeTimeoutMs;
    for (const node of nodes) this.#processes.set(node, {});
  }

  static async start(options: RedisClusterOptions = {}): Promise<RedisCluster> {
    const masters = options.masters ?? 3;
    const replicas = options.replicasPerMaster ?? 1;
    const count = masters * (1 + replicas);
    const dir = mkdtempSync(join(tmpdir(), 'duo-redis-cluster-'));
    const nodes: ClusterNode[] = [];
    for (let index = 0; index < count; index++) nodes.push({ index, port: 0, busPort: 0, url: '', id: '' });
    const cluster = new RedisCluster(nodes, dir, options.nodeTimeoutMs ?? 1000);
    try {
      await Promise.all(nodes.map((node) => cluster.#spawnOnFreePorts(node)));
      for (const node of nodes) node.id = String(await cluster.#admin(node).sendCommand(['CLUSTER', 'MYID']));
      const addresses = nodes.map((node) => `${HOST}:${node.port}`);
      await run(redisCliBinary(), ['--cluster', 'create', ...addresses, '--cluster-replicas', String(replicas), '--cluster-yes'], { timeout: 20_000 }).catch(
        (error: { stdout?: string; stderr?: string; message: string }) => {
          throw new Error(`${redisCliBinary()} --cluster create failed: ${error.stderr || error.stdout || error.message}`);
        },
      );
      await cluster.waitUntilHealthy(nodes, masters, 20_000);
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  /** The URLs of every node, to give a cluster client as root nodes. */
  get urls(): string[] {
    return this.nodes.map((node) => node.url);
  }

  /** The nodes running now. */
  get running(): ClusterNode[] {
    return this.nodes.filter((node) => this.#processes.get(node)!.child !== undefined);
  }

  /** The master serving a key's slot, as `at` sees the cluster. */
  async masterOf(key: string, at: ClusterNode = this.running[0]!): Promise<ClusterNode> {
    const admin = this.#admin(at);
    const slot = Number(await admin.sendCommand(['CLUSTER', 'KEYSLOT', key]));
    const lines = String(await admin.sendCommand(['CLUSTER', 'NODES'])).trim().split('\n');
    for (const line of lines) {
      const [id, , flags, , , , , , ...ranges] = line.split(' ');
      if (!flags!.split(',').includes('master') || flags!.includes('fail')) continue;
      const serves = ranges.some((range) => {
        if (range.startsWith('[')) return false; // a slot in migration
        const [from, to] = range.split('-').map(Number);
        return slot >= from! && slot <= (to ?? from!);
      });
      if (serves) return this.#byId(id!);
    }
    throw new Error(`no live master serves slot ${slot} of ${key}`);
  }

  /** The replicas of a master, as `at` sees them. */
  async replicasOf(master: ClusterNode, at: ClusterNode = this.running.find((node) => node !== master)!): Promise<ClusterNode[]> {
    const lines = String(await this.#admin(at).sendCommand(['CLUSTER', 'NODES'])).trim().split('\n');
    return lines
      .map((line) => line.split(' '))
      .filter(([, , flags, masterId]) => flags!.includes('slave') && masterId === master.id)
      .map(([id]) => this.#byId(id!));
  }

  /** True when `key` has reached the replica (READONLY on a fresh connection, so that the replica answers reads). */
  async replicaHas(replica: ClusterNode, key: string): Promise<boolean> {
    const client = createClient({ url: replica.url, socket: { reconnectStrategy: false, connectTimeout: 1000 } });
    client.on('error', () => {});
    await client.connect();
    try {
      await client.sendCommand(['READONLY']);
      return (await client.exists(key)) === 1;
    } finally {
      client.destroy();
    }
  }

  /** The masters as `at` sees them (flagged failing ones left out). */
  async masters(at: ClusterNode = this.running[0]!): Promise<ClusterNode[]> {
    const lines = String(await this.#admin(at).sendCommand(['CLUSTER', 'NODES'])).trim().split('\n');
    return lines
      .map((line) => line.split(' '))
      .filter(([, , flags]) => flags!.split(',').includes('master') && !flags!.includes('fail'))
      .map(([id]) => this.#byId(id!));
  }

  /** The keys matching `pattern` on every live master whose string value contains `text`, with the master holding each. */
  async keysHolding(pattern: string, text: string): Promise<Array<{ key: string; master: ClusterNode }>> {
    const found: Array<{ key: string; master: ClusterNode }> = [];
    for (const master of await this.masters()) {
      const admin = this.#admin(master);
      for (const key of await admin.keys(pattern)) {
        const value = await admin.get(key).catch(() => null); // another type: not ours
        if (value?.includes(text)) found.push({ key, master });
      }
    }
    return found;
  }

  /** The replication role a node reports itself (INFO replication): 'master' or 'slave'. */
  async role(node: ClusterNode): Promise<string> {
    return /role:(\w+)/.exec(String(await this.#admin(node).sendCommand(['INFO', 'replication'])))?.[1] ?? 'unknown';
  }

  /** cluster_state of one node: 'ok' or 'fail'. */
  async state(node: ClusterNode): Promise<string> {
    const info = String(await this.#admin(node).sendCommand(['CLUSTER', 'INFO']));
    return /cluster_state:(\w+)/.exec(info)?.[1] ?? 'unknown';
  }

  /** True when every running node says cluster_state:ok. */
  async allOk(): Promise<boolean> {
    const states = await Promise.all(this.running.map((node) => this.state(node).catch(() => 'unreachable')));
    return states.every((state) => state === 'ok');
  }

  /** Kills a node at once, as a crash does: its connections drop, its data is lost. */
  async kill(node: ClusterNode): Promise<void> {
    const proc = this.#processes.get(node)!;
    const child = proc.child;
    proc.admin?.destroy();
    proc.admin = undefined;
    if (!child) return;
    proc.child = undefined;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }

  /** Starts a killed node again on its port, with its nodes.conf: it rejoins the cluster (as a replica if it was failed over). */
  async restart(node: ClusterNode): Promise<void> {
    await this.kill(node);
    await this.#spawn(node);
  }

  /**
   * Waits until every running node says cluster_state:ok and knows every node,
   * `masters` masters serve the slots and every replica's link to its master
   * is up (a replica that has not synced cannot take over).
   */
  async waitUntilHealthy(nodes: ClusterNode[] = this.running, masters = 3, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      try {
        const infos = await Promise.all(nodes.map((node) => this.#admin(node).sendCommand(['CLUSTER', 'INFO'])));
        const replication = await Promise.all(nodes.map((node) => this.#admin(node).sendCommand(['INFO', 'replication'])));
        const ok = infos.every((info) => String(info).includes('cluster_state:ok') && String(info).includes(`cluster_known_nodes:${this.nodes.length}`));
        const roles = replication.map((text) => /role:(\w+)/.exec(String(text))?.[1]);
        const linked = replication.every((text) => !String(text).includes('role:slave') || String(text).includes('master_link_status:up'));
        last = `states ok: ${ok}, masters: ${roles.filter((role) => role === 'master').length}, replicas linked: ${linked}`;
        if (ok && linked && roles.filter((role) => role === 'master').length === masters) return;
      } catch (error) {
        last = String(error);
      }
      await sleep(50);
    }
    throw new Error(`the Redis Cluster did not become healthy within ${timeoutMs} ms (${last})`);
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((node) => this.kill(node)));
    rmSync(this.#dir, { recursive: true, force: true });
  }

  #admin(node: ClusterNode): RedisClientType {
    const admin = this.#processes.get(node)!.admin;
    if (!admin) throw new Error(`cluster node ${node.index} (port ${node.port}) is not running`);
    return admin;
  }

  #byId(id: string): ClusterNode {
    const node = this.nodes.find((candidate) => candidate.id === id);
    if (!node) throw new Error(`unknown cluster node id ${id}`);
    return node;
  }

  /** A free port can be taken between the probe and the bind (other suites start servers too): try a few. */
  async #spawnOnFreePorts(node: ClusterNode): Promise<void> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      [node.port, node.busPort] = [await freePort(), await freePort()];
      node.url = `redis://${HOST}:${node.port}`;
      try {
        await this.#spawn(node);
        return;
      } catch (error) {
        lastError = error;
        rmSync(join(this.#dir, `nodes-${node.index}.conf`), { force: true }); // the failed attempt's node config
      }
    }
    throw lastError;
  }

  async #spawn(node: ClusterNode): Promise<void> {
    const args = ['--port', String(node.port), '--bind', HOST, '--cluster-enabled', 'yes', '--cluster-port', String(node.busPort)];
    args.push('--cluster-config-file', join(this.#dir, `nodes-${node.index}.conf`), '--cluster-node-timeout', String(this.#nodeTimeoutMs));
    args.push('--save', '', '--appendonly', 'no', '--dir', this.#dir, '--daemonize', 'no', '--loglevel', 'warning');
    let output = '';
    const child = spawn(redisServerBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const collect = (chunk: Buffer): void => void (output = (output + chunk.toString()).slice(-4000));
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    const reap = (): void => void child.kill('SIGKILL');
    process.once('exit', reap);
    child.once('exit', () => process.removeListener('exit', reap));
    const proc = this.#processes.get(node)!;
    proc.child = child;
    const deadline = Date.now() + 10_000;
    for (;;) {
      const admin: RedisClientType = createClient({ url: node.url, socket: { connectTimeout: 1000, reconnectStrategy: false } });
      admin.on('error', () => {});
      try {
        await admin.connect();
        proc.admin = admin;
        return;
      } catch (error) {
        if (child.exitCode !== null || Date.now() > deadline) {
          child.kill('SIGKILL');
          proc.child = undefined;
          const exit = child.exitCode !== null ? `exited with ${child.exitCode}` : 'running, not answering';
          throw new Error(`cluster node ${node.index} did not start on port ${node.port} (${exit}): ${String(error)} ${output.trim()}`);
        }
        await sleep(25);
      }
    }
  }
}
