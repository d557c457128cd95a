// A one-line progress bar on stderr: overall progress over the planned phases
// (weighted by their expected seconds), the current phase and its own progress,
// elapsed time and a rough ETA. On a non-terminal stderr it prints a plain line
// when a phase starts and every 15 s instead of redrawing.

const WIDTH = 28;

export class Progress {
  /** @param {{ total: number, enabled?: boolean }} options total = sum of phase weights */
  constructor({ total, enabled = true }) {
    this.total = Math.max(total, 1e-9);
    this.done = 0;
    this.weight = 0;
    this.fraction = 0;
    this.label = '';
    this.detail = '';
    this.enabled = enabled;
    this.tty = Boolean(process.stderr.isTTY);
    this.t0 = Date.now();
    this.lastPlain = 0;
    this.timer = undefined;
  }

  /** Starts a phase of the given weight (expected seconds). */
  phase(label, weight) {
    this.done += this.weight;
    this.weight = weight;
    this.fraction = 0;
    this.label = label;
    this.detail = '';
    if (!this.enabled) return;
    if (this.tty) {
      this.timer ??= setInterval(() => this.draw(), 200);
      this.timer.unref();
      this.draw();
    } else this.plain(true);
  }

  /** Progress within the current phase, 0..1, and a short status. */
  update(fraction, detail = '') {
    this.fraction = Math.min(1, Math.max(0, fraction));
    this.detail = detail;
    if (this.enabled && !this.tty) this.plain(false);
  }

  overall() {
    return Math.min(1, (this.done + this.weight * this.fraction) / this.total);
  }

  line() {
    const f = this.overall();
    const filled = Math.round(f * WIDTH);
    const elapsed = (Date.now() - this.t0) / 1000;
    const eta = f > 0.02 ? Math.max(0, elapsed / f - elapsed) : NaN;
    const time = (s) => (Number.isFinite(s) ? `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, '0')}` : '?');
    return `[${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${String(Math.round(f * 100)).padStart(3)}% ${time(elapsed)} (eta ${time(eta)}) ${this.label}${this.detail ? ` — ${this.detail}` : ''}`;
  }

  draw() {
    const cols = process.stderr.columns || 120;
    process.stderr.write(`\r${this.line().slice(0, cols - 1).padEnd(cols - 1)}`);
  }

  plain(force) {
    const now = Date.now();
    if (!force && now - this.lastPlain < 15_000) return;
    this.lastPlain = now;
    process.stderr.write(`${this.line()}\n`);
  }

  /** Prints a message above the bar. */
  log(message) {
    if (this.enabled && this.tty) process.stderr.write(`\r${' '.repeat((process.stderr.columns || 120) - 1)}\r`);
    process.stderr.write(`${message}\n`);
    if (this.enabled && this.tty) this.draw();
  }

  finish() {
    this.done = this.total;
    this.weight = 0;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.enabled && this.tty) {
      this.draw();
      process.stderr.write('\n');
    }
  }
}
