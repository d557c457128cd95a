/**
 * A nats-server of a test's own (free port, own store dir under .tmp/), so
 * tests that stop, kill or restart the server never disturb the shared one.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

export function natsServerBinary(): string | undefined {
  const given = process.env.BUSLINE_NATS_SERVER;
  if (given) return given;
  // The binary scripts/brokers starts for the shared server (its cached pinned build before an older
  // one on PATH, such as Debian's), so a test's own servers can do what the shared one can. Without
  // a cached build it builds one with go install, which can take minutes.
  const found = spawnSync('bash', [join(ROOT, 'scripts/brokers'), 'nats-bin'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 600_000 });
  const path = found.stdout.trim();
  return found.status === 0 && path ? path : undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

export class PrivateNatsServer {
  private child: ChildProcess | undefined;
  private log = '';

  private constructor(
    readonly binary: string,
    readonly port: number,
    readonly dir: string,
    readonly extraArgs: string[],
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  static async start(label: string, extraArgs: string[] = [], port?: number): Promise<PrivateNatsServer> {
    const binary = natsServerBinary();
    if (!binary) throw new Error('no nats-server: bash scripts/brokers nats-bin found or built none (see its message; or set BUSLINE_NATS_SERVER)');
    const dir = join(ROOT, '.tmp', 'nats-adapter-tests', `${label}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
    mkdirSync(dir, { recursive: true });
    const server = new PrivateNatsServer(binary, port ?? (await freePort()), dir, extraArgs);
    await server.launch();
    return server;
  }

  /** The name the server reports (stream info's cluster.leader, for one). */
  get name(): string {
    return `test-${this.port}`;
  }

  private launch(): Promise<void> {
    this.log = '';
    const child = spawn(
      this.binary,
      ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', join(this.dir, 'data'), '--server_name', `test-${this.port}`, ...this.extraArgs],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    return new Promise((resolveReady, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server on ${this.port} not ready in 30 s:\n${this.log}`)), 30_000);
      const onData = (chunk: Buffer) => {
        this.log += chunk.toString();
        if (this.log.includes('Server is ready')) {
          clearTimeout(timer);
          resolveReady();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server on ${this.port} exited (${code}) during start-up:\n${this.log}`));
      });
    });
  }

  /** Stops the process: SIGTERM (graceful) or SIGKILL (crash). */
  async stopProcess(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    await exited;
    this.child = undefined;
  }

  /** Starts the process again on the same port and store. */
  async startProcess(): Promise<void> {
    if (this.child) return;
    await this.launch();
  }

  async restart(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    await this.stopProcess(signal);
    await this.startProcess();
  }

  async stop(): Promise<void> {
    await this.stopProcess('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Three private servers routed into one JetStream cluster (R3 streams need
 * three). `url` lists all three, as a client configured for a cluster would.
 */
export class PrivateNatsCluster {
  private constructor(readonly nodes: PrivateNatsServer[]) {}

  get url(): string {
    return `nats://${this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`;
  }

  node(name: string): PrivateNatsServer | undefined {
    return this.nodes.find((n) => n.name === name);
  }

  static async start(label: string): Promise<PrivateNatsCluster> {
    const ports = new Set<number>();
    while (ports.size < 6) ports.add(await freePort());
    const [c1, c2, c3, r1, r2, r3] = [...ports] as [number, number, number, number, number, number];
    const clientPorts = [c1, c2, c3];
    const routePorts = [r1, r2, r3];
    const routes = routePorts.map((p) => `nats://127.0.0.1:${p}`).join(',');
    const nodes = await Promise.all(
      clientPorts.map((port, i) =>
        PrivateNatsServer.start(`${label}-${i + 1}`, ['--cluster_name', `busline-${label}`, '--cluster', `nats://127.0.0.1:${routePorts[i]}`, '--routes', routes], port),
      ),
    );
    return new PrivateNatsCluster(nodes);
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.stop()));
  }
}
