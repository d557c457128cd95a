/**
 * How each bus event is logged (the bus logs every event before listeners
 * see it): errors and dead letters at `error`, connection trouble, topic
 * mismatches and stalls at `warn`, retries and recoveries at `info`.
 * Free text that may carry a URL is redacted; no config is ever logged.
 */
import type { BusEvents } from './events.js';
import { errorField, redactSecrets, type Logger } from './logger.js';

export function logBusEvent<E extends keyof BusEvents>(log: Logger, event: E, args: BusEvents[E]): void {
  switch (event) {
    case 'error': {
      const [error, context] = args as BusEvents['error'];
      log.error({ err: errorField(error) }, `${redactSecrets(context)}`);
      return;
    }
    case 'deadLetter': {
      const [e] = args as BusEvents['deadLetter'];
      const fields = { topic: e.topic, group: e.group, deadLetterTopic: e.deadLetterTopic, attempts: e.attempts, eventId: e.envelope?.id, error: redactSecrets(e.error) };
      log.error(fields, e.deadLetterTopic === undefined ? 'message dropped (dead-lettering is off)' : `message dead-lettered to "${e.deadLetterTopic}"`);
      return;
    }
    case 'retry': {
      const [e] = args as BusEvents['retry'];
      log.info({ topic: e.topic, group: e.group, attempt: e.attempt, delayMs: e.delayMs, err: errorField(e.error) }, 'handler failed, retrying');
      return;
    }
    case 'connection': {
      const [state, detail, connection] = args as BusEvents['connection'];
      const fields = { state, connection: connection ?? 'main', ...(detail !== undefined ? { detail: redactSecrets(detail) } : {}) };
      if (state === 'disconnected' || state === 'reconnecting') log.warn(fields, `connection ${state}`);
      else log.info(fields, `connection ${state}`);
      return;
    }
    case 'topicMismatch': {
      const [e] = args as BusEvents['topicMismatch'];
      log.warn({ topic: e.topic, differences: e.differences }, `topic "${e.topic}" differs from its configured options`);
      return;
    }
    case 'health': {
      const [e] = args as BusEvents['health'];
      const fields = { topic: e.topic, group: e.group, stalledForMs: e.stalledForMs, backlog: e.backlog };
      if (e.type === 'stalled' || e.type === 'backlogOver') log.warn(fields, `subscription ${e.type === 'stalled' ? 'stalled' : 'backlog over threshold'}`);
      else log.info(fields, `subscription ${e.type === 'recovered' ? 'recovered' : 'backlog back under threshold'}`);
      return;
    }
    case 'backpressure': {
      log.debug({ event: args[0] }, 'backpressure');
      return;
    }
    default:
      // publishOutcome: one per message; the caller's to log.
      return;
  }
}
