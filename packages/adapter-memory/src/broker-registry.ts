/**
 * The process-wide brokers by name, so buses in one process that name the
 * same broker share it.
 */
import { MemoryBroker } from './memory-broker.js';

const brokers = new Map<string, MemoryBroker>();

/**
 * The process-wide broker called `name`: every bus in this process that names
 * it shares its topics and groups (two services talking in one test).
 */
export function getMemoryBroker(name = 'default'): MemoryBroker {
  let broker = brokers.get(name);
  if (broker === undefined) {
    broker = new MemoryBroker(name);
    brokers.set(name, broker);
  }
  return broker;
}

/**
 * Forgets the process-wide broker called `name` (its topics and messages).
 * Drivers already holding it keep using the old instance; new ones get a fresh
 * broker. Returns whether one existed.
 */
export function dropMemoryBroker(name = 'default'): boolean {
  return brokers.delete(name);
}
