// Turning results into a terminal table, results.json, report.md and SVG charts.
import fs from 'node:fs';
import path from 'node:path';
import { barChart, percentileChart, compact } from './svg.mjs';

export const COLORS = {
  memory: '#6b7280',
  nats: '#15803d',
  'nats-raw': '#86c99a',
  kafka: '#1d4ed8',
  'kafka-raw': '#93b4f0',
};
const ORDER = ['memory', 'nats', 'nats-raw', 'kafka', 'kafka-raw'];
const byTarget = (a, b) => ORDER.indexOf(a.target) - ORDER.indexOf(b.target);

const int = (n) => (n === null || n === undefined || !Number.isFinite(n) ? '–' : Math.round(n).toLocaleString('en-US'));
const ms = (n) => (n === null || n === undefined ? '–' : n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const mb = (n) => (n === null || n === undefined ? '–' : n.toFixed(n >= 100 ? 0 : 1));

/** The raw baseline of a busline row in the same scenario run. */
function baselineOf(results, r) {
  if (r.kind !== 'busline' || r.broker === 'memory') return undefined;
  return results.find((x) => x.kind === 'raw' && x.broker === r.broker && x.name === r.name && !x.error);
}

export function ratioText(results, r) {
  if (r.params.mode === 'open') return ''; // at a fixed offered rate both deliver the rate: compare latency instead
  const base = baselineOf(results, r);
  if (!base || r.error || !base.e2e.msgPerSec) return '';
  return `${(r.e2e.msgPerSec / base.e2e.msgPerSec).toFixed(2)}x`;
}

const pct = (f) => (f ? ` (${Math.round(f * 100)}% of max)` : '');

/** An open-loop run that could not carry its offered rate: fell behind, or queued for 100 ms+ at the median. */
export function saturated(r) {
  return r.params?.mode === 'open' && !r.error && (r.e2e.msgPerSec < 0.97 * r.params.rate || (r.latency.p50 ?? 0) > 100);
}

function scenarioTitle(r) {
  if (r.scenario === 'levels') return `levels ${int(r.params.count)} (${int(r.params.keys)} aggregates)`;
  if (r.scenario === 'sustained') return r.params.durationS ? `sustained ${r.params.durationS} s` : `sustained ${int(r.params.count)}`;
  if (r.scenario === 'latency') return `latency @ ${int(r.params.rate)}/s${pct(r.params.fraction)}${r.params.common ? ' common' : ''}${saturated(r) ? ' SATURATED' : ''}`;
  return r.name;
}

/** Rows for the main table (throughput, latency, correctness). */
export function mainRows(results) {
  return results.map((r) => {
    if (r.error && !r.e2e?.received) return [scenarioTitle(r), r.label, `ERROR: ${r.error}`, '', '', '', '', '', '', '', '', '', '', '', ''];
    return [
      scenarioTitle(r),
      r.label,
      int(r.publish.acked),
      int(r.publish.msgPerSec),
      mb(r.publish.mbPerSec),
      int(r.e2e.msgPerSec),
      ratioText(results, r),
      ms(r.latency.p50),
      ms(r.latency.p90),
      ms(r.latency.p99),
      ms(r.latency.p999),
      ms(r.latency.max),
      int(r.correctness.orderViolations),
      int(r.correctness.duplicates),
      int(r.correctness.lost) + (r.publish.failed ? ` (+${int(r.publish.failed)} failed)` : ''),
    ];
  });
}
export const MAIN_HEAD = ['scenario', 'target', 'msgs', 'pub msg/s', 'pub MB/s', 'e2e msg/s', '÷ raw', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'order viol.', 'dups', 'lost'];

export function resourceRows(results) {
  return results.map((r) => {
    const x = r.resources ?? {};
    const leaked = Object.entries(x.leakedHandles ?? {}).map(([t, n]) => `${t}+${n}`).join(' ');
    return [
      scenarioTitle(r),
      r.label,
      x.startRssMB === undefined ? mb(x.peakRssMB) : `${mb(x.startRssMB)} → ${mb(x.peakRssMB)}`,
      mb(x.peakHeapMB),
      x.elu === undefined ? '–' : `${Math.round(x.elu * 100)}%`,
      x.loopDelayMs ? `${ms(x.loopDelayMs.p99)} / ${ms(x.loopDelayMs.max)}` : '–',
      x.cpuMicrosPerMessage === null || x.cpuMicrosPerMessage === undefined ? '–' : x.cpuMicrosPerMessage.toFixed(1),
      x.handlesBefore === undefined ? '–' : `${x.handlesBefore} → ${x.handlesAfter}`,
      leaked || 'none',
      `${r.setupSeconds ?? '–'}`,
    ];
  });
}
export const RESOURCE_HEAD = ['scenario', 'target', 'RSS start → peak MB', 'peak heap MB', 'event loop busy', 'loop delay p99 / max ms', 'CPU µs/msg', 'handles before → after', 'leaked handles', 'setup s'];

/** A plain-text table with aligned columns (numbers right-aligned). */
export function textTable(head, rows) {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i] ?? '').length)));
  const numeric = head.map((_, i) => i >= 2 && rows.every((r) => /^[-–\d.,x%() +→/a-z]*$/i.test(String(r[i] ?? ''))));
  const fmt = (cells) => cells.map((c, i) => (numeric[i] ? String(c ?? '').padStart(widths[i]) : String(c ?? '').padEnd(widths[i]))).join('  ');
  return [fmt(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt)].join('\n');
}

export function markdownTable(head, rows, alignRightFrom = 2) {
  const esc = (s) => String(s ?? '').replace(/\|/g, '\\|');
  return [
    `| ${head.map(esc).join(' | ')} |`,
    `| ${head.map((_, i) => (i >= alignRightFrom ? '---:' : '---')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

/** One row per target: sustained throughput, latency at ~50 % of its max, correctness over every run. */
export function headlineRows(results) {
  const targets = [...new Set(results.map((r) => r.target))].sort((a, b) => ORDER.indexOf(a) - ORDER.indexOf(b));
  return targets.map((t) => {
    const mine = results.filter((r) => r.target === t);
    const sustained = mine.find((r) => r.scenario === 'sustained');
    const lats = mine.filter((r) => r.scenario === 'latency' && !r.error);
    const lat = lats.find((r) => r.params.common) ?? lats.sort((a, b) => Math.abs((a.params.fraction ?? 0) - 0.5) - Math.abs((b.params.fraction ?? 0) - 0.5))[0];
    const sum = (f) => mine.reduce((s, r) => s + (f(r) ?? 0), 0);
    const ratio = sustained ? ratioText(results, sustained) : '';
    return [
      mine[0].label,
      sustained ? int(sustained.publish.msgPerSec) : '–',
      sustained ? mb(sustained.publish.mbPerSec) : '–',
      sustained ? int(sustained.e2e.msgPerSec) : '–',
      ratio,
      lat ? `${int(lat.params.rate)}/s${lat.params.fraction ? ` (${Math.round(lat.params.fraction * 100)}%)` : ''}` : '–',
      lat ? ms(lat.latency.p50) : '–',
      lat ? ms(lat.latency.p99) : '–',
      lat ? ms(lat.latency.p999) : '–',
      int(sum((r) => r.correctness?.orderViolations)),
      int(sum((r) => r.correctness?.lost)),
      int(sum((r) => r.correctness?.duplicates)),
      sustained?.resources?.peakRssMB !== undefined ? `${mb(sustained.resources.startRssMB)} → ${mb(sustained.resources.peakRssMB)}` : '–',
    ];
  });
}
export const HEADLINE_HEAD = ['target', 'sustained pub msg/s', 'pub MB/s', 'sustained e2e msg/s', 'e2e ÷ raw', 'latency run at', 'p50 ms', 'p99 ms', 'p99.9 ms', 'order violations (all runs)', 'lost (all runs)', 'duplicates (all runs)', 'sustained RSS start → peak MB'];

/** Problems that fail the run, and notes that do not. */
export function verdict(results) {
  const failures = [];
  const warnings = [];
  for (const r of results) {
    const what = `${r.label}, ${scenarioTitle(r)}`;
    if (r.error) failures.push(`${what}: ${r.error}`);
    if (r.correctness?.orderViolations > 0) failures.push(`${what}: ${r.correctness.orderViolations} per-key order violations (${r.correctness.examples.join('; ')})`);
    if (r.correctness?.lost > 0) failures.push(`${what}: ${r.correctness.lost} acknowledged messages never delivered`);
    if (r.publish?.failed > 0) warnings.push(`${what}: ${r.publish.failed} publishes failed (${r.publish.firstError})`);
    if (r.correctness?.duplicates > 0) warnings.push(`${what}: ${r.correctness.duplicates} duplicate deliveries`);
    const leaked = Object.entries(r.resources?.leakedHandles ?? {});
    if (leaked.length) warnings.push(`${what}: open handles leaked after close: ${leaked.map(([t, n]) => `${n} ${t}`).join(', ')}`);
    if (r.busErrors?.length) warnings.push(`${what}: bus error events: ${r.busErrors.slice(0, 3).join(' | ')}`);
    if (r.cleanupError) warnings.push(`${what}: cleanup failed: ${r.cleanupError}`);
    if (saturated(r)) warnings.push(`${what}: could not carry the offered rate in open loop (handled ${r.e2e.msgPerSec.toLocaleString('en-US')} msg/s, p50 ${r.latency.p50} ms, publish-ack p50 ${r.publish.ackLatency?.p50 ?? '?'} ms) — its closed-loop maximum overstates what it takes without back-pressure`);
  }
  return { ok: failures.length === 0, failures, warnings };
}

// ------------------------------------------------------------------ charts

export function charts(results) {
  /** @type {Record<string, string>} */
  const files = {};
  const ok = results.filter((r) => !r.error || r.e2e?.received);
  const targets = [...new Set(ok.map((r) => r.target))].sort((a, b) => ORDER.indexOf(a) - ORDER.indexOf(b));
  const labelOf = (t) => ok.find((r) => r.target === t)?.label ?? t;

  const sustained = ok.filter((r) => r.scenario === 'sustained').sort(byTarget);
  if (sustained.length) {
    const p = sustained[0].params;
    files['throughput-sustained.svg'] = barChart({
      title: 'Sustained throughput — busline on each broker, next to the raw clients',
      subtitle: `${p.durationS ? `${p.durationS} s` : `${int(p.count)} messages`} per target, ${p.size} B payload, ${p.topics} topics, ${int(p.keys)} keys, ${int(p.concurrency)} publishes in flight, lag capped at ${int(p.maxLag)}`,
      unit: 'messages per second (higher is better)',
      groups: sustained.map((r) => ({
        label: r.label,
        bars: [
          { label: 'publish (acked)', value: r.publish.msgPerSec, color: COLORS[r.target], note: `(${mb(r.publish.mbPerSec)} MB/s)` },
          { label: 'end to end (handled)', value: r.e2e.msgPerSec, color: shade(COLORS[r.target]), note: ratioText(results, r) ? `(${ratioText(results, r)} raw)` : '' },
        ],
      })),
      legend: [
        { label: 'publish msg/s (darker)', color: '#374151' },
        { label: 'end-to-end msg/s (lighter)', color: '#9ca3af' },
      ],
    });
  }

  const levels = ok.filter((r) => r.scenario === 'levels');
  if (levels.length) {
    const names = [...new Set(levels.map((r) => r.name))];
    files['throughput-levels.svg'] = barChart({
      title: 'The seed\u2019s four levels — end-to-end throughput',
      subtitle: `publish all, handle all, per-key order checked; ${levels[0].params.topics} topics, ${levels[0].params.size} B payload; the seed measured 33–333 msg/s here`,
      unit: 'messages per second, first publish to last handled (higher is better)',
      groups: names.map((name) => {
        const rows = levels.filter((r) => r.name === name).sort(byTarget);
        return { label: `${int(rows[0].params.count)} msgs / ${int(rows[0].params.keys)} keys`, bars: rows.map((r) => ({ label: r.label, value: r.e2e.msgPerSec, color: COLORS[r.target] })) };
      }),
      legend: targets.filter((t) => levels.some((r) => r.target === t)).map((t) => ({ label: labelOf(t), color: COLORS[t] })),
    });
  }

  const latency = ok.filter((r) => r.scenario === 'latency' && r.latency.count > 0);
  for (const t of targets) {
    const rows = latency.filter((r) => r.target === t).sort((a, b) => a.params.rate - b.params.rate);
    if (!rows.length) continue;
    const shades = rows.length === 1 ? [COLORS[t]] : rows.map((_, i) => mix(COLORS[t], i / (rows.length - 1)));
    files[`latency-${t}.svg`] = percentileChart({
      title: `${labelOf(t)} — publish-to-handle latency at fixed offered rates`,
      subtitle: `open loop, ${rows[0].params.durationS} s per rate${rows[0].params.maxRate ? `, sustained max ${int(rows[0].params.maxRate)} msg/s` : ''}; latency from each message's scheduled send time`,
      series: rows.map((r, i) => ({ label: `${int(r.params.rate)} msg/s${r.params.fraction ? ` (${Math.round(r.params.fraction * 100)}%)` : ''}`, color: shades[i], points: r.latency.curve })),
    });
  }
  const common = targets.map((t) => latency.find((r) => r.target === t && r.params.common)).filter(Boolean);
  if (common.length > 1) {
    files['latency-common.svg'] = percentileChart({
      title: `Latency side by side — every target at the same offered rate, ${int(common[0].params.rate)} msg/s`,
      subtitle: `open loop, ${common[0].params.durationS} s; the rate is half the lowest sustained rate among the targets, so every target can carry it`,
      series: common.map((r) => ({ label: `${r.label}${r.params.fraction ? ` (${Math.round(r.params.fraction * 100)}% of its max)` : ''}`, color: COLORS[r.target], dash: r.kind === 'raw', points: r.latency.curve })),
    });
  }
  const mid = targets
    .map((t) => latency.filter((r) => r.target === t && !r.params.common).sort((a, b) => Math.abs(a.params.fraction - 0.5) - Math.abs(b.params.fraction - 0.5))[0])
    .filter(Boolean);
  if (mid.length > 1) {
    files['latency-compare.svg'] = percentileChart({
      title: 'Latency side by side — each target at ~50 % of its own measured maximum',
      subtitle: 'open loop; the offered rates differ (each is half of that target\u2019s sustained end-to-end rate)',
      series: mid.map((r) => ({ label: `${r.label} @ ${compact(r.params.rate)}/s`, color: COLORS[r.target], dash: r.kind === 'raw', points: r.latency.curve })),
    });
  }
  return files;
}

function hex(c) {
  const n = parseInt(c.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}
function toHex([r, g, b]) {
  return `#${[r, g, b].map((v) => Math.round(Math.max(0, Math.min(255, v))).toString(16).padStart(2, '0')).join('')}`;
}
/** A lighter version of a colour. */
function shade(c) {
  return toHex(hex(c).map((v) => v + (255 - v) * 0.45));
}
/** t = 0: light, t = 1: dark. */
function mix(c, t) {
  const base = hex(c);
  const light = base.map((v) => v + (255 - v) * 0.55);
  const dark = base.map((v) => v * 0.7);
  return toHex(light.map((l, i) => l + (dark[i] - l) * t));
}

// ------------------------------------------------------------------ files

/**
 * @param {{ dir: string, results: any[], meta: any, fairnessRows: string[][], verdict: ReturnType<typeof verdict> }} input
 */
export function writeReport({ dir, results, meta, fairnessRows, verdict: v }) {
  fs.mkdirSync(dir, { recursive: true });
  const svgs = charts(results);
  for (const [name, svg] of Object.entries(svgs)) fs.writeFileSync(path.join(dir, name), svg);
  const json = { schema: 'busline-bench-compare/1', ...meta, fairness: fairnessRows.map(([aspect, nats, kafka]) => ({ aspect, nats, kafka })), verdict: v, results };
  fs.writeFileSync(path.join(dir, 'results.json'), `${JSON.stringify(json, null, 2)}\n`);
  fs.writeFileSync(path.join(dir, 'report.md'), markdown({ results, meta, fairnessRows, verdict: v, svgs }));
  return Object.keys(svgs);
}

function markdown({ results, meta, fairnessRows, verdict: v, svgs }) {
  const m = meta.environment;
  const lines = [];
  const img = (name, alt) => (svgs[name] ? `![${alt}](${name})\n` : '');
  lines.push(`# busline bench:compare — memory vs NATS JetStream vs Kafka`);
  lines.push('');
  lines.push(`**Machine: ${meta.machineLabel}** — ${m.cores} × ${m.cpuModel}, ${m.memoryGB} GB RAM, ${m.platform}, Node ${m.node}; brokers on the same machine as the client; load average at start ${m.loadAverageAtStart.join(' / ')}.`);
  lines.push('');
  lines.push(`Run ${meta.startedAt} → ${meta.finishedAt} (wall time **${fmtDuration(meta.wallSeconds)}**), commit \`${(m.gitCommit ?? 'unknown').slice(0, 12)}\`${m.gitDirty ? ` (plus uncommitted changes in ${m.gitDirtyFiles?.join(', ') ?? 'the working tree'}, built into dist by \`tsc -b\`)` : ''}. Command:`);
  lines.push('');
  lines.push('```sh');
  lines.push(meta.command);
  lines.push('```');
  lines.push('');
  lines.push(v.ok ? `**Verdict: PASS** — 0 per-key order violations and 0 lost messages in every run of every target.` : `**Verdict: FAIL**\n\n${v.failures.map((f) => `- ${f}`).join('\n')}`);
  if (v.warnings.length) lines.push(`\nNotes:\n\n${v.warnings.map((w) => `- ${w}`).join('\n')}`);
  lines.push('');
  lines.push('## Headline');
  lines.push('');
  lines.push('Every figure is from this run on the machine above. "e2e" = messages handled by the subscriber per second, first publish to last handled. "÷ raw" = busline over the raw client on the same broker in the same scenario. Latency: open loop at the common offered rate (the same for every target), else at ~50 % of the target\u2019s own sustained maximum.');
  lines.push('');
  lines.push(markdownTable(HEADLINE_HEAD, headlineRows(results), 1));
  lines.push('');
  lines.push(img('throughput-sustained.svg', 'sustained throughput per target'));
  lines.push(img('latency-common.svg', 'latency percentile curves, all targets at the same offered rate'));
  lines.push(img('latency-compare.svg', 'latency percentile curves, all targets at ~50% of their max'));
  lines.push('## How to read this');
  lines.push('');
  lines.push('- **busline memory / NATS / Kafka** run the *same* code path: `createEventBus({ url })`, `bus.publish(topic, bytes, { aggregateId })`, `bus.subscribe(topic, handler, { ordering: "key" })`. Only the URL differs.');
  lines.push('- **raw nats.js / raw kafkajs** do the same work with the broker client alone and the same durability (JetStream acked publish to a file stream; Kafka idempotent producer with acks=all), so the cost of the abstraction is the ratio in the "÷ raw" column.');
  lines.push('- Producer and consumer run in one Node process (so one clock stamps and reads each message); the brokers run on the same 2-core machine. A faster client leaves the broker less CPU: these are whole-system figures for one box, not broker maxima.');
  lines.push('- Memory is in-process: no network, no disk. It shows the ceiling of busline\u2019s own machinery (envelope, ordering pool, acks), not a broker.');
  lines.push('');
  const sections = [
    ['levels', 'The seed\u2019s four levels', `500 / 2,000 / 5,000 / 10,000 envelopes over ${results.find((r) => r.scenario === 'levels')?.params.topics ?? 5} topics with 50 / 200 / 500 / 1,000 aggregates; every aggregate\u2019s events are checked for order. Short bursts: they include the pipeline filling up, so they sit below the sustained figures. The seed reported 33–333 msg/s here.`, ['throughput-levels.svg']],
    ['sustained', 'Sustained', 'Closed loop: `--concurrency` publishes in flight, each publisher awaiting its ack before the next; publishers pause when more than `--max-lag` messages are published but not yet handled, so the rate is what the whole pipeline sustains, not how fast a backlog can be built. Latency here is measured at saturation (≈ backlog ÷ rate) and says little; see the latency runs for latency under a given load.', ['throughput-sustained.svg']],
    ['latency', 'Latency at fixed offered rates', 'Open loop: message *i* is due at start + *i* / rate; every 1 ms tick sends everything due without waiting for earlier publishes, and latency is measured from the *scheduled* send time, so a stalled sender or broker shows up as latency (no coordinated omission). Rates are 25 / 50 / 75 % of each target\u2019s own sustained end-to-end rate, plus one common rate for all targets (half the lowest sustained rate) so the brokers can be compared at the same load. The first second of each run is warm-up and not recorded.', Object.keys(svgs).filter((n) => n.startsWith('latency-') && n !== 'latency-compare.svg' && n !== 'latency-common.svg')],
  ];
  for (const [scenario, title, text, images] of sections) {
    const rows = results.filter((r) => r.scenario === scenario);
    if (!rows.length) continue;
    lines.push(`## ${title}`);
    lines.push('');
    lines.push(text);
    lines.push('');
    for (const name of images) lines.push(img(name, `${title} chart`));
    lines.push(markdownTable(MAIN_HEAD, mainRows(rows)));
    lines.push('');
  }
  lines.push('## Resources (client process)');
  lines.push('');
  lines.push('Peak RSS and heap sampled every 100 ms during the run (after a GC before it); event-loop busy = `performance.eventLoopUtilization()`; loop delay = `monitorEventLoopDelay()`; CPU = user + system time of the Node process per handled message (publisher and consumer together); handles = `process.getActiveResourcesInfo()` before opening the clients and after closing them — anything left over is listed as leaked.');
  lines.push('');
  lines.push(markdownTable(RESOURCE_HEAD, resourceRows(results)));
  lines.push('');
  lines.push('## Fairness');
  lines.push('');
  if (fairnessRows.length) {
    lines.push(markdownTable(['aspect', 'NATS JetStream', 'Kafka'], fairnessRows, 99));
    lines.push('');
  }
  lines.push(`Payload ${meta.options.size} B of bytes (MB/s counts payload bytes only; busline adds CloudEvents headers — id, type, source, time, subject… — the raw baselines send the payload with only a key (Kafka) or a Nats-Msg-Id (NATS)). On Kafka most of the gap to raw is those headers inside kafkajs: measured with \`node --cpu-prof\` on 50k messages, raw kafkajs costs ~16 µs of CPU per message without headers and ~35 µs with busline's 8 headers (its record encoder builds several Buffers per header), against ~43 µs for busline — busline's own share is ~6 µs. Kafka topics: ${meta.options.partitions} partitions each; memory topics: 1 partition, retention capped at a message count so a 60 s run fits in RAM (1.5 × (lag cap + concurrency) per topic in closed loops, every message of the run in open loops; an eviction before delivery would show in the "lost" column). Fresh topics / streams / groups per run, deleted afterwards.`);
  lines.push('');
  lines.push('### Settings in effect');
  lines.push('');
  const seen = new Set();
  for (const r of results) {
    if (seen.has(r.target) || !r.settings || !Object.keys(r.settings).length) continue;
    seen.add(r.target);
    lines.push(`- **${r.label}**: ${Object.entries(r.settings).map(([k, val]) => `${k} ${val}`).join('; ')}`);
  }
  lines.push('');
  lines.push('## Environment');
  lines.push('');
  lines.push('```json');
  lines.push(JSON.stringify({ ...m, brokers: meta.brokers }, null, 2));
  lines.push('```');
  lines.push('');
  lines.push(`Machine-readable results: [results.json](results.json). Re-run: \`pnpm bench:compare\` (see tools/bench-compare/README.md).`);
  lines.push('');
  return lines.join('\n');
}

export function fmtDuration(s) {
  const m = Math.floor(s / 60);
  return m ? `${m} min ${Math.round(s % 60)} s` : `${Math.round(s)} s`;
}
