import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../../scripts/node-runtime', import.meta.url));

/** The path of scripts/node-runtime's pinned Node `major` (22 or 24), installed on first use (its progress goes to stderr). */
export function pinnedNode(major) {
  return execFileSync('bash', [SCRIPT, String(major)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}
