/**
 * Private Kafka (KRaft) for tests that restart or kill brokers: the shared
 * broker of scripts/brokers is never restarted by a test. A single node
 * (PrivateKafkaBroker) or a three-node cluster (PrivateKafkaCluster). They use
 * the jars scripts/brokers fetched (.cache/kafka-<version>/libs, or
 * BUSLINE_KAFKA_LIBS), free ports, and data directories under .tmp/.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createPublicKey, createSign, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import kafkajs, { type Admin } from 'kafkajs';
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

/** Runs `file` to completion; a failure says `what` failed, with the end of its stderr. */
function command(file: string, args: string[], what = `${file} ${args[0]}`): Promise<void> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolveRun() : reject(new Error(`${what} exited ${code}: ${err.slice(-500)}`))));
  });
}

/** A Kafka tool (a class of the jars) run to completion. */
function run(args: string[], libs: string): Promise<void> {
  return command('java', ['-Xmx256m', '-XX:TieredStopAtLevel=1', '-cp', `${libs}/*`, ...args], args[0]);
}

function requireLibs(): string {
  const libs = kafkaLibs();
  if (!libs) throw new Error('no Kafka jars: run `bash scripts/brokers up kafka` once (it fetches them), or set BUSLINE_KAFKA_LIBS');
  return libs;
}

function newClusterId(): string {
  let id = randomBytes(16).toString('base64url');
  while (id.startsWith('-')) id = randomBytes(16).toString('base64url');
  return id;
}

/**
 * Settings every private node shares: KRaft combined mode on loopback, no auto-created topics, quick first joins.
 * `extra`: more client listeners (name and port; the name is also its security protocol).
 */
function commonProperties(dir: string, port: number, controller: number, extra: { name: string; port: number }[] = []): string[] {
  const clients = [`PLAINTEXT://127.0.0.1:${port}`, ...extra.map((l) => `${l.name}://127.0.0.1:${l.port}`)].join(',');
  return [
    'process.roles=broker,controller',
    `listeners=${clients},CONTROLLER://127.0.0.1:${controller}`,
    `advertised.listeners=${clients}`,
    `listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT${extra.map((l) => `,${l.name}:${l.name}`).join('')}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    `log.dirs=${join(dir, 'data')}`,
    'auto.create.topics.enable=false',
    'offsets.topic.num.partitions=4',
    'group.initial.rebalance.delay.ms=0',
    'num.network.threads=2',
    'num.io.threads=2',
  ];
}

/** Writes a node's server.properties and a log4j2 config that discards the broker's log, and formats its storage. */
async function prepareNode(dir: string, properties: string[], clusterId: string, libs: string, formatArgs: string[] = []): Promise<void> {
  mkdirSync(join(dir, 'data'), { recursive: true });
  writeFileSync(join(dir, 'server.properties'), [...properties, ''].join('\n'));
  writeFileSync(join(dir, 'log4j2.properties'), 'rootLogger.level = ERROR\nappender.null.type = Null\nappender.null.name = NULL\nrootLogger.appenderRef.null.ref = NULL\n');
  await run(['kafka.tools.StorageTool', 'format', '--config', join(dir, 'server.properties'), '--cluster-id', clusterId, '--ignore-formatted', ...formatArgs], libs);
}

/** A fresh, empty directory for a private node. */
function freshDir(dir: string): string {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** One Kafka server process on a prepared directory: launched, stopped (SIGTERM, controlled shutdown) or killed (SIGKILL). */
class KafkaProcess {
  private child: ChildProcess | undefined;

  constructor(
    readonly dir: string,
    private readonly libs: string,
    private readonly jvm: string[],
  ) {}

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  launch(): void {
    this.child = spawn(
      'java',
      [...this.jvm, `-Dlog4j2.configurationFile=${join(this.dir, 'log4j2.properties')}`, '-cp', `${this.libs}/*`, 'kafka.Kafka', join(this.dir, 'server.properties')],
      { stdio: 'ignore' },
    );
  }

  /** SIGSTOP freezes the broker (connections stay open, nothing is answered); SIGCONT resumes it. */
  signal(signal: 'SIGSTOP' | 'SIGCONT'): void {
    if (this.running) this.child!.kill(signal);
  }

  async stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }
}

/** Polls `check` (errors count as "not yet") until it is true or the deadline passes. */
async function pollUntil(check: () => Promise<boolean>, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what()}`);
    await new Promise((resolveWait) => setTimeout(resolveWait, 300));
  }
}

function quietAdmin(brokers: string[]): Admin {
  return new kafkajs.Kafka({ brokers, logLevel: kafkajs.logLevel.NOTHING, retry: { retries: 0 } }).admin();
}

/** Ready = a kafkajs admin can create a topic of `replicationFactor` and every partition has a leader. */
async function waitReady(brokers: string[], replicationFactor: number, timeoutMs = 120_000): Promise<void> {
  const admin = quietAdmin(brokers);
  try {
    await pollUntil(
      async () => {
        await admin.connect();
        await admin.createTopics({ topics: [{ topic: 'busline-ready', numPartitions: 1, replicationFactor }], waitForLeaders: false });
        const { topics } = await admin.fetchTopicMetadata({ topics: ['busline-ready'] });
        return topics[0]?.partitions.every((p) => p.leader >= 0) ?? false;
      },
      timeoutMs,
      () => `private Kafka on ${brokers.join(',')} not ready`,
    );
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** The user the secured broker knows, for every SASL mechanism. */
export const SASL_USER = { username: 'busline', password: 'busline-secret' };

/** The issuer and audience the secured broker expects in an OAUTHBEARER token. */
export const OAUTH_CLAIMS = { iss: 'https://idp.busline.test', aud: 'busline-kafka' };

/** An RSA key pair of the kind an identity provider signs tokens with (RS256). */
export function oauthSigningKey(): KeyObject {
  return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
}

/**
 * An OAUTHBEARER token as an identity provider issues it: a JWT signed with
 * `key` (RS256, key id `kid`) for `sub`, with OAUTH_CLAIMS (or `claims` in
 * their place), valid for `lifetimeS` seconds from now (negative: expired
 * that long ago).
 */
export function signedJwt(key: KeyObject, sub: string, lifetimeS = 3_600, claims: Partial<typeof OAUTH_CLAIMS> = {}, kid = 'busline-test'): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${b64({ alg: 'RS256', typ: 'JWT', kid })}.${b64({ sub, iat: now, exp: now + lifetimeS, ...OAUTH_CLAIMS, ...claims })}`;
  return `${unsigned}.${createSign('RSA-SHA256').update(unsigned).sign(key).toString('base64url')}`;
}

/** Where a secured private broker listens with SASL and with TLS, and the certificate to trust. */
export interface SecureEndpoints {
  /** `127.0.0.1:port` of the SASL_PLAINTEXT listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER with signed tokens). */
  sasl: string;
  /** `127.0.0.1:port` of the SSL listener (TLS; no client certificate asked). */
  tls: string;
  /** The broker's self-signed certificate (PEM): the CA a TLS client trusts. */
  ca: string;
  /** The identity provider's signing key: the broker trusts tokens it signed (`signedJwt`), through its JWKS file. */
  oauthKey: KeyObject;
}

/** A keystore with a certificate for 127.0.0.1 in `dir`, and the listeners, settings and SCRAM users that use it. */
async function secureListeners(dir: string) {
  const [sasl, tls] = [await freePort(), await freePort()];
  const keystore = join(dir, 'broker.p12');
  const pass = 'busline-store';
  await command('keytool', ['-genkeypair', '-alias', 'broker', '-keyalg', 'RSA', '-keysize', '2048', '-validity', '7', '-dname', 'CN=127.0.0.1', '-ext', 'SAN=IP:127.0.0.1,DNS:localhost', '-keystore', keystore, '-storetype', 'PKCS12', '-storepass', pass, '-keypass', pass]);
  await command('keytool', ['-exportcert', '-alias', 'broker', '-rfc', '-keystore', keystore, '-storepass', pass, '-file', join(dir, 'ca.pem')]);
  const oauthKey = oauthSigningKey();
  const jwk = createPublicKey(oauthKey).export({ format: 'jwk' });
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...jwk, kid: 'busline-test', alg: 'RS256', use: 'sig' }] }));
  const jwksUrl = pathToFileURL(join(dir, 'jwks.json')).href;
  const { username, password } = SASL_USER;
  const scram = 'org.apache.kafka.common.security.scram.ScramLoginModule required;';
  return {
    listeners: [
      { name: 'SASL_PLAINTEXT', port: sasl },
      { name: 'SSL', port: tls },
    ],
    properties: [
      'sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER',
      // OAUTHBEARER as in production: Kafka's JWT validator checks each token's RS256 signature against the
      // identity provider's public keys (a JWKS file here: no provider on this machine), its expiry, issuer
      // and audience.
      'listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;',
      'listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler',
      `sasl.oauthbearer.jwks.endpoint.url=${jwksUrl}`,
      `sasl.oauthbearer.expected.issuer=${OAUTH_CLAIMS.iss}`,
      `sasl.oauthbearer.expected.audience=${OAUTH_CLAIMS.aud}`,
      `listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${username}="${password}";`,
      `listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=${scram}`,
      `listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=${scram}`,
      `ssl.keystore.location=${keystore}`,
      'ssl.keystore.type=PKCS12',
      `ssl.keystore.password=${pass}`,
      `ssl.key.password=${pass}`,
      'ssl.client.auth=none',
    ],
    // SCRAM credentials are stored in the cluster metadata: KRaft takes them at format time.
    formatArgs: ['--add-scram', `SCRAM-SHA-256=[name=${username},password=${password}]`, '--add-scram', `SCRAM-SHA-512=[name=${username},password=${password}]`],
    endpoints: { sasl: `127.0.0.1:${sasl}`, tls: `127.0.0.1:${tls}`, ca: readFileSync(join(dir, 'ca.pem'), 'utf8'), oauthKey } satisfies SecureEndpoints,
    // Kafka 4 reads an OAuth URL only when this system property allows it.
    jvm: [`-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=${jwksUrl}`],
  };
}

export class PrivateKafkaBroker {
  private constructor(
    private readonly node: KafkaProcess,
    readonly port: number,
    /** Where a broker started with `secure` listens with SASL and with TLS. */
    readonly secure?: SecureEndpoints,
  ) {}

  get dir(): string {
    return this.node.dir;
  }

  get brokers(): string {
    return `127.0.0.1:${this.port}`;
  }

  /**
   * A single-node broker. `secure`: besides PLAINTEXT it also listens with
   * SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; user SASL_USER; OAUTHBEARER, tokens `signedJwt` signs with `secure.oauthKey`) and
   * with TLS (a self-signed certificate for 127.0.0.1, made by keytool):
   * `secure` then says where and with what.
   */
  static async start(label: string, options: { secure?: boolean } = {}): Promise<PrivateKafkaBroker> {
    const libs = requireLibs();
    const [port, controller] = [await freePort(), await freePort()];
    const dir = freshDir(join(REPO, '.tmp', `kafka-private-${label}-${process.pid}`));
    const secure = options.secure ? await secureListeners(dir) : undefined;
    await prepareNode(
      dir,
      [
        ...commonProperties(dir, port, controller, secure?.listeners),
        'node.id=1',
        `controller.quorum.voters=1@127.0.0.1:${controller}`,
        'num.partitions=3',
        'default.replication.factor=1',
        'min.insync.replicas=1',
        'offsets.topic.replication.factor=1',
        'transaction.state.log.replication.factor=1',
        'transaction.state.log.min.isr=1',
        'share.coordinator.state.topic.replication.factor=1',
        'share.coordinator.state.topic.min.isr=1',
        ...(secure?.properties ?? []),
      ],
      newClusterId(),
      libs,
      secure?.formatArgs,
    );
    const broker = new PrivateKafkaBroker(new KafkaProcess(dir, libs, ['-Xms128m', '-Xmx384m', '-XX:+UseSerialGC', '-XX:CICompilerCount=2', ...(secure?.jvm ?? [])]), port, secure?.endpoints);
    broker.node.launch();
    await waitReady([broker.brokers], 1);
    return broker;
  }

  /** Freezes the broker (SIGSTOP): like a broker that hangs, its connections stay open and nothing is answered. */
  freeze(): void {
    this.node.signal('SIGSTOP');
  }

  thaw(): void {
    this.node.signal('SIGCONT');
  }

  /** Stops the broker (controlled shutdown) and starts it again on the same data. */
  async restart(): Promise<void> {
    await this.halt();
    await this.resume();
  }

  /** Stops the broker (controlled shutdown), keeping its data for `resume`. */
  async halt(): Promise<void> {
    await this.node.stop('SIGTERM');
  }

  /** Starts a halted broker on its data; resolves once it is ready. */
  async resume(): Promise<void> {
    this.node.launch();
    await waitReady([this.brokers], 1);
  }

  async stop(): Promise<void> {
    await this.node.stop('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One partition as the cluster's metadata describes it. */
export interface PartitionInfo {
  partition: number;
  /** The leader's node id; -1 while it has none. */
  leader: number;
  /** Node ids of the in-sync replicas. */
  isr: number[];
}

/** One node of a PrivateKafkaCluster: its Kafka node id, client port, and its process. */
export class PrivateKafkaNode {
  constructor(
    readonly id: number,
    readonly port: number,
    private readonly process: KafkaProcess,
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.process.running;
  }

  /** kill -9: no controlled shutdown, leadership moves only once the controller fences the node. */
  kill(): Promise<void> {
    return this.process.stop('SIGKILL');
  }

  /** Starts the node again on its data (it rejoins the quorum and catches up as a follower). */
  start(): void {
    if (!this.running) this.process.launch();
  }

  stop(): Promise<void> {
    return this.process.stop('SIGTERM');
  }
}

/**
 * Three combined broker+controller nodes (a controller quorum of three) the
 * way a small production cluster runs: topics default to replication factor
 * 3 with min.insync.replicas 2, as do the offsets and transaction-state
 * topics, so one node may die without losing an acknowledged write (acks=all)
 * or stopping writes. Small heaps and C1-only JIT keep three JVMs within a
 * CI runner.
 */
export class PrivateKafkaCluster {
  private constructor(
    readonly nodes: PrivateKafkaNode[],
    private readonly root: string,
  ) {}

  /** Every node's client address (the bootstrap list for clients). */
  get brokers(): string[] {
    return this.nodes.map((n) => n.address);
  }

  node(id: number): PrivateKafkaNode {
    const node = this.nodes.find((n) => n.id === id);
    if (!node) throw new Error(`no node ${id} in the cluster (nodes ${this.nodes.map((n) => n.id).join(', ')})`);
    return node;
  }

  static async start(label: string): Promise<PrivateKafkaCluster> {
    const libs = requireLibs();
    const ids = [1, 2, 3];
    const ports: number[] = [];
    const controllers: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      ports.push(await freePort());
      controllers.push(await freePort());
    }
    const voters = ids.map((id, i) => `${id}@127.0.0.1:${controllers[i]}`).join(',');
    const root = join(REPO, '.tmp', `kafka-cluster-${label}-${process.pid}`);
    rmSync(root, { recursive: true, force: true });
    const clusterId = newClusterId();
    const jvm = ['-Xms128m', '-Xmx384m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-XX:CICompilerCount=1'];
    const nodes = await Promise.all(
      ids.map(async (id, i) => {
        const dir = freshDir(join(root, `node-${id}`));
        await prepareNode(
          dir,
          [
            ...commonProperties(dir, ports[i]!, controllers[i]!),
            `node.id=${id}`,
            `controller.quorum.voters=${voters}`,
            'num.partitions=6',
            'default.replication.factor=3',
            'min.insync.replicas=2',
            'offsets.topic.replication.factor=3',
            'transaction.state.log.replication.factor=3',
            'transaction.state.log.min.isr=2',
            'share.coordinator.state.topic.replication.factor=3',
            'share.coordinator.state.topic.min.isr=2',
          ],
          clusterId,
          libs,
        );
        return new PrivateKafkaNode(id, ports[i]!, new KafkaProcess(dir, libs, jvm));
      }),
    );
    const cluster = new PrivateKafkaCluster(nodes, root);
    for (const node of nodes) node.start();
    try {
      await waitReady(cluster.brokers, 3, 180_000);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** Each partition of `topic`: its leader's node id (-1: none) and in-sync replicas. */
  async partitions(topic: string): Promise<PartitionInfo[]> {
    const admin = quietAdmin(this.nodes.filter((n) => n.running).map((n) => n.address));
    try {
      await admin.connect();
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
      return (topics[0]?.partitions ?? []).map((p) => ({ partition: p.partitionId, leader: p.leader, isr: p.isr })).sort((a, b) => a.partition - b.partition);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  /** Waits until the partitions of `topic` satisfy `ok` (a node that does not answer counts as "not yet"). */
  async waitForPartitions(topic: string, ok: (partitions: PartitionInfo[]) => boolean, what: string, timeoutMs = 120_000): Promise<void> {
    let last: PartitionInfo[] = [];
    await pollUntil(
      async () => {
        last = await this.partitions(topic);
        return last.length > 0 && ok(last);
      },
      timeoutMs,
      () => `${what} (now ${JSON.stringify(last)})`,
    );
  }

  /** Waits until every partition of `topic` has a leader and at least `isr` in-sync replicas (3: fully caught up). */
  waitHealthy(topic: string, isr = this.nodes.length, timeoutMs = 120_000): Promise<void> {
    return this.waitForPartitions(topic, (ps) => ps.every((p) => p.leader >= 0 && p.isr.length >= isr), `every partition of ${topic} to have a leader and ${isr} in-sync replicas`, timeoutMs);
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
    rmSync(this.root, { recursive: true, force: true });
  }
}
