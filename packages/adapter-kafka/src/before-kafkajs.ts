/**
 * The kafkajs fix that must be in place before kafkajs itself loads (its
 * consumer group requires Batch then: kafkajs-batch.ts). The adapter imports
 * this module before any that imports kafkajs; keep it first.
 */
import { applyKafkajsBatch } from './kafkajs-batch.js';

applyKafkajsBatch();
