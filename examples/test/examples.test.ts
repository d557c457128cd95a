// Runs the compiled examples (`tsc -b` builds examples/dist) as a user would,
// on the in-memory broker, and checks what they promise to show.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const example = (name: string) => fileURLToPath(new URL(`../dist/${name}.js`, import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts an example; `onLine` sees each stdout line (to send it a signal, say). */
function run(name: string, onLine: (line: string, child: ReturnType<typeof spawn>) => void = () => {}): Promise<Run> {
  const env = { ...process.env };
  delete env.BUSLINE_URL; // memory://, whatever the shell running the tests points at
  const child = spawn(process.execPath, [example(name)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let partial = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    for (const line of lines) onLine(line, child);
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}

describe('examples', () => {
  it('graceful-shutdown: on SIGTERM every handler that started finishes, every published job is handled, exit 0', async () => {
    let signalled = false;
    const result = await run('graceful-shutdown', (line, child) => {
      // Mid-stream: jobs are being published and handlers are running.
      if (!signalled && line === 'handled job 3') {
        signalled = true;
        child.kill('SIGTERM');
      }
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines).toContain('SIGTERM: stopping');
    const summary = JSON.parse(lines.at(-1)!) as { published: number; started: number; finished: number };
    expect(summary.finished).toBe(summary.started);
    expect(summary.finished).toBe(summary.published);
    const handled = lines.filter((l) => l.startsWith('handled job ')).map((l) => Number(l.slice('handled job '.length)));
    expect(new Set(handled)).toEqual(new Set(Array.from({ length: summary.published }, (_, i) => i + 1)));
  });

  it('dead-letter-replay: a dead-lettered payment is inspected, replayed after the fix and handled', async () => {
    const result = await run('dead-letter-replay');
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    const at = (prefix: string) => lines.findIndex((l) => l.startsWith(prefix));
    expect(lines[at('dead letter order-2')]).toMatch(
      /^dead letter order-2 from payments \(group billing\): handler error "currency USD is not supported" after 1 attempt\(s\), original event \S+$/,
    );
    expect(at('dead letter order-2')).toBeLessThan(at('replayed order-2 to payments'));
    expect(at('replayed order-2 to payments')).toBeLessThan(at('handled order-2: 25 USD'));
    expect(lines.at(-1)).toBe('every dead letter replayed and handled');
    // Handled exactly once: the original was refused, the replay succeeded.
    expect(lines.filter((l) => l.startsWith('handled order-2'))).toHaveLength(1);
  });
});
