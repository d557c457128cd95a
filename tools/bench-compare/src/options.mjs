// Command-line options of bench:compare, with their defaults.
import { parseArgs } from 'node:util';

export const HELP = `pnpm bench:compare [options]   (node tools/bench-compare/src/cli.mjs [options])

The same workload through busline on each adapter, plus raw-client baselines.

  --adapters LIST      memory,nats,kafka (default: all three)
  --no-baselines       skip the raw nats.js / kafkajs rows
  --scenarios LIST     levels,sustained,latency (default: all)
  --size BYTES         payload size (default 256, min 24)
  --count N            sustained: N messages per target instead of a duration
  --duration S         sustained: seconds per target (default 60)
  --topics N           topics per run (default 5)
  --keys N             aggregates (ordering keys) in sustained/latency (default 1000)
  --partitions N       Kafka partitions per topic (default 3; NATS: one stream per topic)
  --concurrency N      publishes in flight in closed-loop runs (default 1000)
  --max-lag N          sustained: publishers pause above N published-but-unhandled (default 50000)
  --rate LIST          latency: fixed offered rates in msg/s instead of fractions of the max
  --fractions LIST     latency: fractions of each target's measured max (default 0.25,0.5,0.75)
  --common-rate R      latency: one more run per target at the same offered rate R msg/s for all,
                       "auto" (default: half the lowest sustained rate among the targets) or "off"
  --latency-duration S latency: seconds per offered rate (default 10)
  --levels LIST        levels: message counts (default 500,2000,5000,10000; keys = count / 10)
  --quick              short everything: levels 500,2000; sustained 5 s; latency 3 s per rate
  --out DIR            report directory (default bench-results/<date>-<time>)
  --machine TEXT       how the report names the machine (default: CPU, cores, host name)
  --nats-url URL       default $BUSLINE_NATS_URL or nats://127.0.0.1:4222
  --kafka-brokers LIST default $BUSLINE_KAFKA_BROKERS or 127.0.0.1:9092
  --bus JSON           extra busline config for every bus, e.g. '{"nats":{"ackMode":"cumulative"}}'
  --render DIR         only re-write DIR/report.md and the charts from DIR/results.json
  --no-progress        no progress bar
  --help

Exits 1 if any run has a per-key order violation, a lost message or an error.`;

export const list = (s) => String(s).split(',').map((x) => x.trim()).filter(Boolean);
const num = (name, s, min = 0) => {
  const n = Number(s);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name}: expected a number >= ${min}, got "${s}"`);
  return n;
};

export function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    allowPositionals: false,
    options: {
      adapters: { type: 'string', default: 'memory,nats,kafka' },
      'no-baselines': { type: 'boolean', default: false },
      scenarios: { type: 'string', default: 'levels,sustained,latency' },
      size: { type: 'string', default: '256' },
      count: { type: 'string' },
      duration: { type: 'string' },
      topics: { type: 'string', default: '5' },
      keys: { type: 'string', default: '1000' },
      partitions: { type: 'string', default: '3' },
      concurrency: { type: 'string', default: '1000' },
      'max-lag': { type: 'string', default: '50000' },
      rate: { type: 'string' },
      fractions: { type: 'string', default: '0.25,0.5,0.75' },
      'latency-duration': { type: 'string' },
      'common-rate': { type: 'string', default: 'auto' },
      levels: { type: 'string' },
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      machine: { type: 'string' },
      'nats-url': { type: 'string', default: process.env.BUSLINE_NATS_URL || 'nats://127.0.0.1:4222' },
      'kafka-brokers': { type: 'string', default: process.env.BUSLINE_KAFKA_BROKERS || '127.0.0.1:9092' },
      bus: { type: 'string', default: '{}' },
      'no-progress': { type: 'boolean', default: false },
      render: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  const adapters = list(values.adapters);
  for (const a of adapters) if (!['memory', 'nats', 'kafka'].includes(a)) throw new Error(`--adapters: unknown adapter "${a}" (memory, nats, kafka)`);
  const scenarios = list(values.scenarios);
  for (const s of scenarios) if (!['levels', 'sustained', 'latency'].includes(s)) throw new Error(`--scenarios: unknown scenario "${s}" (levels, sustained, latency)`);
  const quick = values.quick;
  const count = values.count !== undefined ? num('count', values.count, 1) : undefined;
  const duration = values.duration !== undefined ? num('duration', values.duration, 1) : count !== undefined ? undefined : quick ? 5 : 60;
  let bus;
  try {
    bus = JSON.parse(values.bus);
  } catch (e) {
    throw new Error(`--bus: not JSON (${e.message})`);
  }
  const targets = [];
  for (const a of adapters) {
    targets.push(a);
    if (!values['no-baselines'] && a !== 'memory') targets.push(`${a}-raw`);
  }
  return {
    help: values.help,
    adapters,
    targets,
    baselines: !values['no-baselines'],
    scenarios,
    size: num('size', values.size, 24),
    count,
    duration,
    topics: num('topics', values.topics, 1),
    keys: num('keys', values.keys, 1),
    partitions: num('partitions', values.partitions, 1),
    concurrency: num('concurrency', values.concurrency, 1),
    maxLag: num('max-lag', values['max-lag'], 1),
    rates: values.rate ? list(values.rate).map((r) => num('rate', r, 1)) : undefined,
    fractions: list(values.fractions).map((f) => num('fractions', f, 0.001)),
    commonRate: values['common-rate'] === 'auto' || values['common-rate'] === 'off' ? values['common-rate'] : num('common-rate', values['common-rate'], 1),
    latencyDuration: values['latency-duration'] !== undefined ? num('latency-duration', values['latency-duration'], 1) : quick ? 3 : 10,
    levels: values.levels ? list(values.levels).map((l) => num('levels', l, 1)) : quick ? [500, 2000] : [500, 2000, 5000, 10000],
    quick,
    out: values.out,
    machine: values.machine,
    natsUrl: values['nats-url'],
    kafkaBrokers: list(values['kafka-brokers']),
    bus,
    progress: !values['no-progress'],
    render: values.render,
  };
}
