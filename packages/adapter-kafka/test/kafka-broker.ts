/**
 * A private single-node Kafka (KRaft) for tests that restart the broker: the
 * shared broker of scripts/brokers is never restarted by a test. It uses the
 * jars scripts/brokers fetched (.cache/kafka-<version>/libs, or
 * BUSLINE_KAFKA_LIBS), free ports, and a data directory under .tmp/.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import kafkajs from 'kafkajs';
import { kafkaLibs } from './kafka-libs.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

function run(args: string[], libs: string): Promise<void> {
  return new Promise((resolveRun, reject) => {
    const child = spawn('java', ['-Xmx256m', '-XX:TieredStopAtLevel=1', '-cp', `${libs}/*`, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolveRun() : reject(new Error(`${args[0]} exited ${code}: ${err.slice(-500)}`))));
  });
}

export class PrivateKafkaBroker {
  private child: ChildProcess | undefined;

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly libs: string,
  ) {}

  get brokers(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async start(label: string): Promise<PrivateKafkaBroker> {
    const libs = kafkaLibs();
    if (!libs) throw new Error('no Kafka jars: run `bash scripts/brokers up kafka` once (it fetches them), or set BUSLINE_KAFKA_LIBS');
    const [port, controller] = [await freePort(), await freePort()];
    const dir = join(REPO, '.tmp', `kafka-private-${label}-${process.pid}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, 'data'), { recursive: true });
    writeFileSync(
      join(dir, 'server.properties'),
      [
        'process.roles=broker,controller',
        'node.id=1',
        `controller.quorum.voters=1@127.0.0.1:${controller}`,
        `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controller}`,
        `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
        'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
        'controller.listener.names=CONTROLLER',
        'inter.broker.listener.name=PLAINTEXT',
        `log.dirs=${join(dir, 'data')}`,
        'num.partitions=3',
        'default.replication.factor=1',
        'min.insync.replicas=1',
        'auto.create.topics.enable=false',
        'offsets.topic.replication.factor=1',
        'offsets.topic.num.partitions=4',
        'transaction.state.log.replication.factor=1',
        'transaction.state.log.min.isr=1',
        'share.coordinator.state.topic.replication.factor=1',
        'share.coordinator.state.topic.min.isr=1',
        'group.initial.rebalance.delay.ms=0',
        'num.network.threads=2',
        'num.io.threads=2',
        '',
      ].join('\n'),
    );
    writeFileSync(join(dir, 'log4j2.properties'), 'rootLogger.level = ERROR\nappender.null.type = Null\nappender.null.name = NULL\nrootLogger.appenderRef.null.ref = NULL\n');
    let clusterId = randomBytes(16).toString('base64url');
    while (clusterId.startsWith('-')) clusterId = randomBytes(16).toString('base64url');
    await run(['kafka.tools.StorageTool', 'format', '--config', join(dir, 'server.properties'), '--cluster-id', clusterId, '--ignore-formatted'], libs);
    const broker = new PrivateKafkaBroker(dir, port, libs);
    await broker.launch();
    return broker;
  }

  private async launch(): Promise<void> {
    this.child = spawn(
      'java',
      [
        '-Xms128m',
        '-Xmx384m',
        '-XX:+UseSerialGC',
        '-XX:CICompilerCount=2',
        `-Dlog4j2.configurationFile=${join(this.dir, 'log4j2.properties')}`,
        '-cp',
        `${this.libs}/*`,
        'kafka.Kafka',
        join(this.dir, 'server.properties'),
      ],
      { stdio: 'ignore' },
    );
    await this.ready();
  }

  /** Ready = a kafkajs admin can create and see a topic. */
  private async ready(timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const admin = new kafkajs.Kafka({ brokers: [this.brokers], logLevel: kafkajs.logLevel.NOTHING, retry: { retries: 0 } }).admin();
    for (;;) {
      try {
        await admin.connect();
        await admin.createTopics({ topics: [{ topic: 'busline-ready', numPartitions: 1, replicationFactor: 1 }], waitForLeaders: false });
        const { topics } = await admin.fetchTopicMetadata({ topics: ['busline-ready'] });
        if (topics[0]?.partitions.every((p) => p.leader >= 0)) break;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`private Kafka on ${this.brokers} not ready within ${timeoutMs} ms`);
      await new Promise((resolveWait) => setTimeout(resolveWait, 300));
    }
    await admin.disconnect().catch(() => undefined);
  }

  private async terminate(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }

  /** Stops the broker (controlled shutdown) and starts it again on the same data. */
  async restart(): Promise<void> {
    await this.terminate();
    await this.launch();
  }

  async stop(): Promise<void> {
    await this.terminate();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
