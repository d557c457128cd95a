const counts = new Map();
const orig = globalThis.setTimeout;
globalThis.setTimeout = function (fn, ms, ...a) { const s = new Error().stack.split('\n').slice(2, 4).join(' | ') + ' ms=' + ms; counts.set(s, (counts.get(s) ?? 0) + 1); return orig(fn, ms, ...a); };
process.on('exit', () => { console.log([...counts].sort((a, b) => b[1] - a[1]).slice(0, 8)); });
await import('./t-tmp.mjs');
