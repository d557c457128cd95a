// Where the smoke tests find the brokers. scripts/with-brokers (and
// `eval "$(scripts/brokers env)"`) export these variables.
export const mode = process.env.BUSLINE_BROKERS;

/** true when the run asked for no real brokers, or for a set without `broker` */
export function skipBroker(broker: 'nats' | 'kafka'): boolean {
  if (mode === undefined || mode === '') return false; // unset: run, and fail clearly below
  if (mode === 'none') return true;
  return !mode.split(',').map((s) => s.trim()).includes(broker);
}

export function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set. Run the tests through scripts/with-brokers (pnpm test does), ` +
        `or start the brokers with \`pnpm brokers:up\` and export their addresses with ` +
        `\`eval "$(bash scripts/brokers env)"\`. To run without brokers locally: BUSLINE_BROKERS=none.`,
    );
  }
  return value;
}

export const unique = (prefix: string): string =>
  `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
