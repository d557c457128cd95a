import {
  ADAPTER_PACKAGES,
  ADAPTER_TYPES,
  busConfigSchema,
  configFromEnv,
  formatZodIssues,
  parseBusUrl,
  type AdapterType,
  type BusConfig,
  type BusConfigInput,
} from './config.js';
import type { AdapterModule } from './driver.js';
import { AdapterMissingError, ConfigError, errorMessage } from './errors.js';
import { EventBus } from './event-bus.js';

/** The second argument of `createEventBus`. */
export interface CreateEventBusOptions {
  /** Use this adapter module instead of importing the package by name (bundlers, third-party adapters). */
  adapter?: AdapterModule<any>;
}

/**
 * Builds an event bus from configuration: `type` (or the URL's scheme) picks
 * the adapter, whose package is loaded on demand so a service installs only
 * the broker client it uses. With no argument the config comes from the
 * environment (see `configFromEnv`). Every invalid field — core's and the
 * adapter's — is listed in one ConfigError. The bus is returned not yet started.
 */
export async function createEventBus(config?: BusConfigInput | string, options: CreateEventBusOptions = {}): Promise<EventBus> {
  const input: BusConfigInput = typeof config === 'string' ? { url: config } : (config ?? configFromEnv());
  const issues: string[] = [];
  const custom = options.adapter && !isBuiltIn(options.adapter.type) ? options.adapter : undefined;
  // A third-party adapter's section sits under its own type name, which core's strict schema does not know.
  const { [custom?.type ?? '']: customSection, ...coreInput } = (input ?? {}) as Record<string, unknown>;

  const parsed = busConfigSchema.safeParse(custom ? coreInput : input);
  if (!parsed.success) issues.push(...formatZodIssues(parsed.error));

  const raw = (input ?? {}) as Record<string, unknown>;
  let type = typeof raw.type === 'string' ? raw.type : custom?.type;
  let url: string | undefined;
  if (typeof raw.url === 'string') {
    const fromUrl = parseBusUrl(raw.url, custom?.type);
    if (typeof fromUrl === 'string') issues.push(fromUrl);
    else {
      if (type !== undefined && type !== fromUrl.type && !custom) issues.push(`type: "${type}" contradicts url scheme "${fromUrl.type}://"`);
      type ??= fromUrl.type;
      url = fromUrl.url;
    }
  }
  if (type === undefined && !issues.some((i) => i.startsWith('type') || i.startsWith('url'))) {
    issues.push('type: set type ("memory" | "nats" | "kafka") or a url such as nats://127.0.0.1:4222');
  }

  let adapter: AdapterModule<any> | undefined = options.adapter;
  if (type !== undefined && !isBuiltIn(type) && adapter === undefined) {
    issues.push(`type: "${type}" is not one of ${ADAPTER_TYPES.join(', ')}; pass a third-party adapter as createEventBus(config, { adapter })`);
  }
  if (adapter !== undefined && type !== undefined && adapter.type !== type) {
    issues.push(`type: "${type}" does not match the given adapter's type "${adapter.type}"`);
  }
  if (type !== undefined && isBuiltIn(type) && adapter === undefined) {
    try {
      adapter = await loadAdapter(type);
    } catch (error) {
      // Alone, a missing package is the error; beside other problems it is one more line.
      if (issues.length === 0 && parsed.success) throw error;
      issues.push(`type: ${(error as Error).message}`);
    }
  }
  let section: unknown;
  if (adapter && type !== undefined) {
    const given = ((custom ? customSection : raw[type]) ?? {}) as Record<string, unknown>;
    let fromUrl: Record<string, unknown> | undefined;
    try {
      fromUrl = url ? adapter.sectionFromUrl(url) : {};
    } catch (error) {
      // The adapter's reason; the URL itself is not repeated (it may hold a password).
      issues.push(`url: ${errorMessage(error)}`);
    }
    if (fromUrl !== undefined) {
      const result = adapter.configSchema.safeParse({ ...fromUrl, ...given });
      if (result.success) section = result.data;
      else issues.push(...formatZodIssues(result.error, type));
    }
  }

  if (issues.length > 0 || !parsed.success || adapter === undefined || type === undefined) {
    throw new ConfigError('invalid event bus config; fix these fields', issues);
  }
  const busConfig = { ...parsed.data, type } as BusConfig;
  return new EventBus(adapter.createDriver(section), busConfig);
}

function isBuiltIn(type: string): type is AdapterType {
  return (ADAPTER_TYPES as readonly string[]).includes(type);
}

async function loadAdapter(type: AdapterType): Promise<AdapterModule<any>> {
  const name = ADAPTER_PACKAGES[type];
  let mod: { adapter?: AdapterModule<any> };
  try {
    // Resolved from core's own folder: npm installs the adapter beside core, and pnpm links it into
    // core's dependencies because the adapters are optional peers of core.
    mod = (await import(name)) as typeof mod;
  } catch (error) {
    if (isNotFound(error, name)) throw new AdapterMissingError(name, type, error);
    // Installed but broken (a dependency of its own missing, a syntax error): that error says what to fix.
    throw error;
  }
  if (!mod.adapter) throw new AdapterMissingError(name, type, new Error(`${name} does not export "adapter"`));
  return mod.adapter;
}

/** The package itself is not installed: not one of its dependencies, nor a file inside it. */
function isNotFound(error: unknown, name: string): boolean {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  // ERR_MODULE_NOT_FOUND from Node's import(); MODULE_NOT_FOUND from a bundler's runtime shim.
  return (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && errorMessage(error).includes(`'${name}'`);
}
