// CPU time of a broker that scripts/brokers started on this machine, for the benchmarks:
// client and broker share the cores, so each bench prints the broker's CPU per message
// beside its own.
import { readFileSync } from 'node:fs';

const STATE = new URL('../../.tmp/brokers/', import.meta.url);
/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const TICK_US = 1e6 / Number(process.env.BENCH_CLK_TCK ?? 100);

/**
 * A reader of NODE's CPU time so far in µs (user + system, from /proc), or a reader that
 * returns NaN when NODE was not started by scripts/brokers here (a remote broker, another OS).
 * `command` is a word its command line must contain, so a reused pid is not mistaken for it.
 */
export function brokerCpuReader(node, command) {
  let pid;
  try {
    pid = readFileSync(new URL(`${node}/pid`, STATE), 'utf8').trim();
    if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(command)) pid = undefined;
  } catch {
    pid = undefined;
  }
  return () => (pid === undefined ? NaN : statCpuUs(`/proc/${pid}/stat`));
}

/** User + system CPU µs of the process or thread whose /proc stat file is `path`; NaN when unreadable. */
function statCpuUs(path) {
  try {
    const fields = readFileSync(path, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_US;
  } catch {
    return NaN;
  }
}

/**
 * A reader of this process's main-thread CPU time so far in µs (Linux /proc; NaN elsewhere).
 * process.cpuUsage() counts every thread, V8's garbage-collector helpers among them; the main
 * thread alone is what bounds a single JavaScript consumer's rate.
 */
export function mainThreadCpuReader() {
  const path = `/proc/self/task/${process.pid}/stat`;
  return () => statCpuUs(path);
}
