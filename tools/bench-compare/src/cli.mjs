#!/usr/bin/env node
// pnpm bench:compare [options] — one workload through the busline API on
// memory, NATS JetStream and Kafka (and the raw clients), one after another.
// See tools/bench-compare/README.md; `--help` lists the options.
import fs from 'node:fs';
import path from 'node:path';
import { natsConfigSchema } from '@busline/adapter-nats';
import { kafkaConfigSchema } from '@busline/adapter-kafka';
import { makeTarget, TARGETS } from './targets.mjs';
import { HELP, parseOptions } from './options.mjs';
import { measureRun, fmtInt } from './runner.mjs';
import { Progress } from './progress.mjs';
import { enableGc } from './measure.mjs';
import { machine, kafkaVersion, kafkaBrokerSettings, natsServerSettings, fairness, REPO } from './env.mjs';
import { MAIN_HEAD, RESOURCE_HEAD, HEADLINE_HEAD, mainRows, resourceRows, headlineRows, textTable, verdict, writeReport, fmtDuration } from './report.mjs';

const latencyRuns = (o) => (o.rates?.length ?? o.fractions.length) + (o.commonRate !== 'off' && o.targets.length > 1 ? 1 : 0);

/** Expected seconds of each planned phase, for the progress bar. */
function weightOf(scenario, target, o) {
  const setup = TARGETS[target].broker === 'memory' ? 0.3 : TARGETS[target].broker === 'nats' ? 1.5 : 5;
  if (scenario === 'levels') return setup + 1;
  if (scenario === 'sustained') return setup + (o.duration ?? o.count / 20_000) + 2;
  return (setup + o.latencyDuration + 1) * latencyRuns(o);
}

async function main() {
  const t0 = Date.now();
  const startedAt = new Date().toISOString();
  const o = parseOptions(process.argv.slice(2));
  if (o.help) {
    console.log(HELP);
    return 0;
  }
  if (o.render) return render(path.resolve(o.render));
  enableGc();
  const endpoints = { natsUrl: o.natsUrl, kafkaBrokers: o.kafkaBrokers, bus: o.bus };
  const env = machine();
  const machineLabel = o.machine ?? `${env.cores}-core ${env.cpuModel}, ${env.memoryGB} GB (host ${env.hostname})`;
  const brokers = {};
  if (o.adapters.includes('nats')) brokers.nats = await natsServerSettings(o.natsUrl);
  if (o.adapters.includes('kafka')) brokers.kafka = { version: kafkaVersion(), settings: await kafkaBrokerSettings(o.kafkaBrokers) };

  const weights = o.scenarios.flatMap((s) => o.targets.map((t) => (s === 'levels' ? o.levels.length : 1) * weightOf(s, t, o)));
  const progress = new Progress({ total: weights.reduce((a, b) => a + b, 0), enabled: o.progress });
  progress.log(`bench:compare — targets ${o.targets.join(', ')}; scenarios ${o.scenarios.join(', ')}; ${o.size} B payload; ${machineLabel}`);
  if (brokers.nats) progress.log(`  NATS ${o.natsUrl} (nats-server ${brokers.nats.version ?? '?'})`);
  if (brokers.kafka) progress.log(`  Kafka ${o.kafkaBrokers.join(',')} (Apache Kafka ${brokers.kafka.version.version})`);

  const results = [];
  /** @param {string} scenario @param {string} name @param {string} t @param {any} params */
  const run = async (scenario, name, t, params, label) => {
    progress.phase(`${TARGETS[t].label}: ${label}`, (scenario === 'latency' ? 1 / latencyRuns(o) : 1) * weightOf(scenario, t, o));
    const target = makeTarget(t, endpoints);
    const r = await measureRun({ target, scenario, name, params, progress, drainTimeoutS: scenario === 'levels' ? 60 : 120 });
    results.push(r);
    const c = r.correctness;
    progress.log(
      r.error && !r.e2e.received
        ? `  ${TARGETS[t].label.padEnd(15)} ${label}: ERROR ${r.error}`
        : `  ${TARGETS[t].label.padEnd(15)} ${label}: pub ${fmtInt(r.publish.msgPerSec)} msg/s, e2e ${fmtInt(r.e2e.msgPerSec)} msg/s, p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, order ${c.orderViolations}, lost ${c.lost}, dups ${c.duplicates}${r.error ? `, ERROR ${r.error}` : ''}`,
    );
    return r;
  };
  const base = { topics: o.topics, partitions: o.partitions, size: o.size, concurrency: o.concurrency, maxLag: o.maxLag };

  if (o.scenarios.includes('levels')) {
    for (const count of o.levels) {
      const keys = Math.max(1, Math.min(1000, Math.round(count / 10)));
      for (const t of o.targets) await run('levels', `levels-${count}`, t, { ...base, mode: 'closed', count, keys }, `levels ${fmtInt(count)} msgs / ${keys} keys`);
    }
  }
  /** @type {Record<string, number>} */
  const maxRate = {};
  if (o.scenarios.includes('sustained')) {
    for (const t of o.targets) {
      const r = await run('sustained', 'sustained', t, { ...base, mode: 'closed', keys: o.keys, count: o.count, durationS: o.duration }, o.count ? `sustained ${fmtInt(o.count)} msgs` : `sustained ${o.duration} s`);
      if (!r.error && r.e2e.msgPerSec > 0) maxRate[t] = r.e2e.msgPerSec;
    }
  }
  let commonRate = 0;
  if (o.scenarios.includes('latency')) {
    if (!o.rates) {
      for (const t of o.targets) {
        if (maxRate[t]) continue;
        // No sustained figure for this target: calibrate with a short closed-loop run (reported as such).
        const r = await run('calibration', 'calibration', t, { ...base, mode: 'closed', keys: o.keys, durationS: o.quick ? 3 : 10 }, 'calibration (max rate)');
        if (!r.error && r.e2e.msgPerSec > 0) maxRate[t] = r.e2e.msgPerSec;
      }
    }
    // One offered rate for every target, so the brokers' latencies can be compared at the same load.
    const known = o.targets.map((t) => maxRate[t]).filter((r) => r > 0);
    commonRate = o.commonRate === 'off' || o.targets.length < 2 ? 0 : o.commonRate === 'auto' ? (known.length ? roundRate(0.5 * Math.min(...known)) : 0) : Number(o.commonRate);
    for (const t of o.targets) {
      const plan = o.rates ? o.rates.map((rate) => ({ rate, fraction: maxRate[t] ? rate / maxRate[t] : null, common: false })) : o.fractions.map((f) => ({ rate: roundRate(f * (maxRate[t] ?? 0)), fraction: f, common: false }));
      for (const p of plan) p.common = commonRate > 0 && p.rate === commonRate;
      if (commonRate > 0 && !plan.some((p) => p.common)) plan.push({ rate: commonRate, fraction: maxRate[t] ? commonRate / maxRate[t] : null, common: true });
      plan.sort((x, y) => x.rate - y.rate);
      for (const { rate, fraction, common } of plan) {
        if (!(rate > 0)) continue;
        const name = common ? 'latency-common' : `latency-${o.rates ? rate : Math.round(/** @type {number} */ (fraction) * 100)}`;
        await run('latency', name, t, { ...base, mode: 'open', keys: o.keys, rate, fraction, common, maxRate: maxRate[t] ?? null, durationS: o.latencyDuration, warmupS: 1 }, `latency @ ${fmtInt(rate)} msg/s${fraction ? ` (${Math.round(fraction * 100)}%)` : ''}${common ? ', common rate' : ''}`);
      }
    }
  }
  progress.finish();

  const wallSeconds = Math.round((Date.now() - t0) / 100) / 10;
  const v = verdict(results);
  const clients = env.clients;
  const fairnessRows = fairness({
    brokers: o.adapters,
    kafka: brokers.kafka,
    nats: brokers.nats,
    partitions: o.partitions,
    topics: o.topics,
    concurrency: o.concurrency,
    size: o.size,
    clients,
    natsCfg: natsConfigSchema.parse(o.bus.nats ?? {}),
    kafkaCfg: kafkaConfigSchema.parse({ brokers: o.kafkaBrokers, ...(o.bus.kafka ?? {}) }),
  });
  const outDir = path.resolve(REPO, o.out ?? path.join('bench-results', startedAt.replace(/[:]/g, '').replace(/\..*/, '').replace('T', '-')));
  const quote = (a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  const command = ['pnpm bench:compare', ...process.argv.slice(2).map(quote)].join(' ');
  const meta = {
    startedAt,
    finishedAt: new Date().toISOString(),
    wallSeconds,
    command,
    machineLabel,
    commonRate: commonRate || null,
    environment: env,
    brokers,
    options: { ...o, help: undefined },
  };
  const files = writeReport({ dir: outDir, results, meta, fairnessRows, verdict: v });

  const show = results.filter((r) => r.scenario !== 'calibration');
  console.log(`\nbusline bench:compare — ${machineLabel}; wall time ${fmtDuration(wallSeconds)}\n`);
  console.log('Headline (sustained throughput; latency at the common offered rate; correctness over all runs)');
  console.log(textTable(HEADLINE_HEAD, headlineRows(show)));
  console.log('\nAll runs');
  console.log(textTable(MAIN_HEAD, mainRows(results)));
  console.log('\nResources (client process)');
  console.log(textTable(RESOURCE_HEAD, resourceRows(results)));
  console.log(`\nreport: ${path.relative(process.cwd(), path.join(outDir, 'report.md'))} (+ results.json, ${files.length} SVG charts)`);
  if (v.warnings.length) console.log(`\nnotes:\n${v.warnings.map((w) => `  - ${w}`).join('\n')}`);
  console.log(v.ok ? '\nPASS: 0 order violations, 0 lost messages, no errors' : `\nFAIL:\n${v.failures.map((f) => `  - ${f}`).join('\n')}`);
  return v.ok ? 0 : 1;
}

/** Re-writes report.md and the SVGs of a finished run from its results.json (same data, current report code). */
function render(dir) {
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8'));
  const { results, fairness: fair, verdict: _old, schema: _schema, ...meta } = json;
  const v = verdict(results);
  const files = writeReport({ dir, results, meta, fairnessRows: fair.map((f) => [f.aspect, f.nats, f.kafka]), verdict: v });
  console.log(`re-rendered ${path.join(dir, 'report.md')} and ${files.length} charts from results.json (${v.ok ? 'PASS' : 'FAIL'})`);
  return v.ok ? 0 : 1;
}

/** Two significant digits: 12,345 → 12,000. */
function roundRate(r) {
  if (!(r > 0)) return 0;
  const mag = 10 ** Math.max(0, Math.floor(Math.log10(r)) - 1);
  return Math.max(1, Math.round(r / mag) * mag);
}

main().then(
  (code) => {
    process.exitCode = code;
    // Client libraries may keep timers around after close (reported as leaks above); do not hang on them.
    setTimeout(() => process.exit(code), 2_000).unref();
  },
  (error) => {
    console.error(error instanceof Error ? error.stack : error);
    process.exit(2);
  },
);
