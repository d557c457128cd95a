/**
 * The kafkajs fix that must be in place before kafkajs itself loads (its
 * consumer group requires Batch then: kafkajs-batch.ts). The adapter imports
 * this module before any that imports kafkajs; keep it first. It exports
 * nothing: package.json lists it under `sideEffects`, so bundlers keep it.
 */
import { applyKafkajsBatch } from './kafkajs-batch.js';

applyKafkajsBatch();
