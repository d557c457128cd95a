// A small SVG writer for the report's two kinds of chart: horizontal grouped
// bars (throughput) and percentile curves (latency). Plain strings, no DOM,
// no browser; every chart carries its title, axis labels, units and legend,
// and every bar its value.

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

/** @param {string} s */
export function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** 1,234 / 12.3k / 1.2M */
export function compact(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  const a = Math.abs(n);
  if (a >= 1e6) return `${(n / 1e6).toFixed(a >= 1e7 ? 1 : 2)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(a >= 1e5 ? 0 : 1)}k`;
  if (a >= 100) return Math.round(n).toLocaleString('en-US');
  if (a >= 1) return n.toFixed(a >= 10 ? 1 : 2).replace(/\.0+$/, '');
  return n.toPrecision(2);
}

/** A "nice" axis maximum and step for 0..max. */
function niceScale(max, ticks = 5) {
  if (!(max > 0)) return { max: 1, step: 0.2 };
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  return { max: Math.ceil(max / step) * step, step };
}

/**
 * Horizontal grouped bars.
 * @param {{ title: string, subtitle?: string, unit: string, groups: { label: string, bars: { label: string, value: number | null, color: string, note?: string }[] }[], legend?: { label: string, color: string }[], width?: number }} spec
 */
export function barChart(spec) {
  const width = spec.width ?? 880;
  const labelW = 190;
  const right = 150;
  const barH = 18;
  const barGap = 4;
  const groupGap = 16;
  const top = spec.subtitle ? 64 : 48;
  const plotW = width - labelW - right;
  const values = spec.groups.flatMap((g) => g.bars.map((b) => b.value ?? 0));
  const { max, step } = niceScale(Math.max(...values, 0));
  const x = (v) => labelW + (Math.max(0, v) / max) * plotW;

  let y = top;
  const body = [];
  for (const group of spec.groups) {
    const groupH = group.bars.length * (barH + barGap) - barGap;
    body.push(`<text x="${labelW - 10}" y="${y + groupH / 2 + 4}" text-anchor="end" font-size="13" font-weight="600" fill="#111827">${esc(group.label)}</text>`);
    for (const bar of group.bars) {
      const w = bar.value ? x(bar.value) - labelW : 0;
      body.push(`<rect x="${labelW}" y="${y}" width="${Math.max(w, bar.value ? 1 : 0).toFixed(1)}" height="${barH}" fill="${bar.color}" rx="2"><title>${esc(`${group.label} — ${bar.label}: ${bar.value ?? 'n/a'} ${spec.unit}`)}</title></rect>`);
      const text = bar.value === null || bar.value === undefined ? 'n/a' : `${compact(bar.value)}${bar.note ? ` ${bar.note}` : ''}`;
      body.push(`<text x="${labelW + w + 5}" y="${y + barH - 5}" font-size="11.5" fill="#111827">${esc(text)}</text>`);
      if (spec.groups.length > 0 && group.bars.length > 1) body.push(`<text x="${labelW + 4}" y="${y + barH - 5}" font-size="10.5" fill="#ffffff" opacity="${w > 95 ? 1 : 0}">${esc(bar.label)}</text>`);
      y += barH + barGap;
    }
    y += groupGap - barGap;
  }
  const plotBottom = y - groupGap + barGap + 6;
  const grid = [];
  for (let v = 0; v <= max + 1e-9; v += step) {
    grid.push(`<line x1="${x(v).toFixed(1)}" y1="${top - 6}" x2="${x(v).toFixed(1)}" y2="${plotBottom}" stroke="#e5e7eb"/>`);
    grid.push(`<text x="${x(v).toFixed(1)}" y="${plotBottom + 15}" text-anchor="middle" font-size="11" fill="#4b5563">${compact(v)}</text>`);
  }
  const legend = [];
  let lx = 16;
  let ly = plotBottom + 56;
  for (const l of spec.legend ?? []) {
    const w = 30 + l.label.length * 7;
    if (lx + w > width - 16) {
      lx = 16;
      ly += 20;
    }
    legend.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${l.color}" rx="2"/><text x="${lx + 17}" y="${ly}" font-size="12" fill="#111827">${esc(l.label)}</text>`);
    lx += w;
  }
  const height = (legend.length ? ly + 14 : plotBottom + 44);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT}>`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="16" y="24" font-size="16" font-weight="700" fill="#111827">${esc(spec.title)}</text>`,
    spec.subtitle ? `<text x="16" y="44" font-size="12" fill="#4b5563">${esc(spec.subtitle)}</text>` : '',
    ...grid,
    ...body,
    `<text x="${labelW + plotW / 2}" y="${plotBottom + 30}" text-anchor="middle" font-size="12" fill="#374151">${esc(spec.unit)}</text>`,
    ...legend,
    '</svg>',
  ].join('\n');
}

/** Percentile → x position on a "nines" axis: 0, 90, 99, 99.9 … equally spaced. */
export function ninesOf(p) {
  return p >= 100 ? Infinity : Math.log10(100 / (100 - p));
}

/**
 * Latency percentile curves: x = percentile on a nines axis (the last point,
 * "max", one step right of the deepest percentile), y = latency on a log scale.
 * @param {{ title: string, subtitle?: string, series: { label: string, color: string, dash?: boolean, points: [number, number][] }[], width?: number }} spec
 *   points: [percentile, ms]
 */
export function percentileChart(spec) {
  const width = spec.width ?? 880;
  const height = 420;
  const left = 70;
  const right = 240;
  const top = spec.subtitle ? 64 : 48;
  const bottom = 56;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  spec = { ...spec, series: spec.series.map((s) => ({ ...s, points: s.points.filter(([p]) => p >= 50) })) };
  const finite = spec.series.flatMap((s) => s.points.filter(([p]) => p < 100).map(([p]) => ninesOf(p)));
  const xMaxFinite = Math.max(3, ...finite);
  const xMin = ninesOf(50);
  const xMaxPos = Math.ceil(xMaxFinite) + 0.6;
  const xOf = (p) => left + (((p >= 100 ? xMaxPos : ninesOf(p)) - xMin) / (xMaxPos - xMin)) * plotW;
  const ys = spec.series.flatMap((s) => s.points.map(([, v]) => v)).filter((v) => v > 0);
  const yMinDec = Math.floor(Math.log10(Math.max(1e-3, Math.min(...ys, 1))));
  const yMaxDec = Math.ceil(Math.log10(Math.max(...ys, 1) * 1.05));
  const yOf = (v) => top + plotH - ((Math.log10(Math.max(v, 10 ** yMinDec)) - yMinDec) / Math.max(1, yMaxDec - yMinDec)) * plotH;

  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT}>`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="16" y="24" font-size="16" font-weight="700" fill="#111827">${esc(spec.title)}</text>`,
  ];
  if (spec.subtitle) out.push(`<text x="16" y="44" font-size="12" fill="#4b5563">${esc(spec.subtitle)}</text>`);
  for (let d = yMinDec; d <= yMaxDec; d++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** d;
      if (v > 10 ** yMaxDec) break;
      const y = yOf(v).toFixed(1);
      out.push(`<line x1="${left}" y1="${y}" x2="${left + plotW}" y2="${y}" stroke="${m === 1 ? '#d1d5db' : '#f3f4f6'}"/>`);
      out.push(`<text x="${left - 6}" y="${Number(y) + 4}" text-anchor="end" font-size="11" fill="#4b5563">${compact(v)}</text>`);
    }
  }
  const xticks = [[50, 'p50'], [90, 'p90'], [99, 'p99'], [99.9, 'p99.9'], [99.99, 'p99.99'], [99.999, 'p99.999'], [99.9999, 'p99.9999']].filter(([p]) => ninesOf(p) <= xMaxFinite + 1e-9);
  xticks.push([100, 'max']);
  for (const [p, label] of xticks) {
    const x = xOf(p).toFixed(1);
    out.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${top + plotH}" stroke="#e5e7eb"/>`);
    out.push(`<text x="${x}" y="${top + plotH + 16}" text-anchor="middle" font-size="11" fill="#4b5563">${label}</text>`);
  }
  out.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#9ca3af"/>`);
  out.push(`<text x="${left + plotW / 2}" y="${height - 14}" text-anchor="middle" font-size="12" fill="#374151">percentile (x% of messages were handled within y ms of their scheduled send time)</text>`);
  out.push(`<text transform="translate(18 ${top + plotH / 2}) rotate(-90)" text-anchor="middle" font-size="12" fill="#374151">latency, ms (log scale)</text>`);
  spec.series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const d = s.points.map(([p, v], j) => `${j ? 'L' : 'M'}${xOf(p).toFixed(1)},${yOf(v).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2.2"${s.dash ? ' stroke-dasharray="6 4"' : ''}/>`);
    for (const [p, v] of s.points) out.push(`<circle cx="${xOf(p).toFixed(1)}" cy="${yOf(v).toFixed(1)}" r="2.6" fill="${s.color}"><title>${esc(`${s.label}: p${p} = ${v} ms`)}</title></circle>`);
    const ly = top + 10 + i * 34;
    const p50 = s.points.find(([p]) => p === 50)?.[1];
    const p99 = s.points.find(([p]) => p === 99)?.[1];
    out.push(`<line x1="${left + plotW + 14}" y1="${ly}" x2="${left + plotW + 36}" y2="${ly}" stroke="${s.color}" stroke-width="2.5"${s.dash ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(`<text x="${left + plotW + 42}" y="${ly + 4}" font-size="12" fill="#111827">${esc(s.label)}</text>`);
    out.push(`<text x="${left + plotW + 42}" y="${ly + 19}" font-size="10.5" fill="#4b5563">${esc(`p50 ${compact(p50)} · p99 ${compact(p99)} ms`)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}
