/**
 * MemberProcess: a group member in a child process (member-main), whose
 * handlings feed an OrderChecker in this process. Lets a test kill a member
 * with SIGKILL mid-handling, or stop it gracefully with SIGTERM, the way
 * deployments restart and crash.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Handling, OrderChecker } from './order-checker.js';

/**
 * How a member process connects and handles: its bus config, topic, group and simulated handler
 * time and failures.
 */
export interface MemberSpec {
  /** A bus config `createEventBus` accepts, JSON only (URL, adapter section). */
  config: Record<string, unknown>;
  /** Absolute URL of the adapter module to pass as `{ adapter }` (when core cannot resolve it by type). */
  adapterModule?: string;
  topic: string;
  group: string;
  /** Each handling takes up to this long. */
  handlerMs: number;
  /** Percent of first attempts that fail (and are retried). */
  failPercent: number;
}

const MAIN = fileURLToPath(new URL('./member-main.js', import.meta.url));

/**
 * A group member running in a child process, so tests can kill it (SIGKILL) or stop it (SIGTERM)
 * mid-handling the way deployments do; its handlings feed an OrderChecker here.
 */
export class MemberProcess {
  /** How long `stop()` waits for a member to exit after SIGTERM, unless told otherwise. */
  static readonly STOP_TIMEOUT_MS = 60_000;
  private readonly open = new Map<number, Handling>();
  readonly errors: string[] = [];
  /** The member's driver counters (`bus.metrics().driver`), reported when it stopped on SIGTERM. */
  driverMetrics: Record<string, number> | undefined;
  private readonly exited: Promise<void>;

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
    private readonly checker: OrderChecker,
  ) {
    // 'close', not 'exit': the IPC channel is drained by then, so a member's last messages
    // (its driver metrics, sent just before it exits) have arrived when stop() resolves.
    this.exited = new Promise((resolve) => child.once('close', () => resolve()));
    child.on('message', (m: { t: string; id: number; key: string; seq: number; at: string; ok: boolean; message: string; driver: Record<string, number> }) => {
      if (m.t === 'b') {
        const handling: Handling = { member: name, key: m.key, seq: m.seq, start: BigInt(m.at) };
        this.open.set(m.id, handling);
        checker.record(handling);
      } else if (m.t === 'e') {
        const handling = this.open.get(m.id);
        if (handling === undefined) return;
        this.open.delete(m.id);
        handling.end = BigInt(m.at);
        handling.ok = m.ok;
      } else if (m.t === 'metrics') {
        this.driverMetrics = m.driver;
      } else if (m.t === 'error') {
        this.errors.push(m.message);
      }
    });
  }

  /** Starts a member and resolves once it is subscribed. */
  static start(name: string, spec: MemberSpec, checker: OrderChecker, timeoutMs: number): Promise<MemberProcess> {
    const child = fork(MAIN, [], { env: { ...process.env, BUSLINE_MEMBER: JSON.stringify(spec) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const member = new MemberProcess(name, child, checker);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`member ${name} did not subscribe within ${timeoutMs} ms`));
      }, timeoutMs);
      child.on('message', (m: { t: string }) => {
        if (m.t !== 'ready') return;
        clearTimeout(timer);
        resolve(member);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`member ${name} exited before it subscribed (code ${code}, signal ${signal})`));
      });
    });
  }

  /** kill -9: its unfinished handlings end now, as far as the checker is concerned. */
  async kill(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
    this.checker.memberDied(this.name);
  }

  /**
   * SIGTERM: the member closes its bus (handlers finish, the rest goes back), reports `driverMetrics`
   * and exits. A member still running `timeoutMs` after the SIGTERM is killed (SIGKILL; its
   * unfinished handlings end then, as with `kill()`) and stop() rejects saying so: a close that
   * hangs fails the test with that message instead of a scenario timeout.
   */
  async stop(timeoutMs = MemberProcess.STOP_TIMEOUT_MS): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const closed = await Promise.race([
      this.exited.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (closed) return;
    await this.kill();
    throw new Error(`member ${this.name} did not close within ${timeoutMs} ms after SIGTERM (killed with SIGKILL)`);
  }

  /**
   * Stops every member (`stop()`, concurrently) and waits for all of them; then rejects with the
   * first failure, if any, so one member that did not close leaves none of the others running.
   */
  static async stopAll(members: readonly MemberProcess[], timeoutMs = MemberProcess.STOP_TIMEOUT_MS): Promise<void> {
    const results = await Promise.allSettled(members.map((m) => m.stop(timeoutMs)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}
