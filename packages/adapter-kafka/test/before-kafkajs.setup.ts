// Every test process puts the adapter's kafkajs Batch in place before anything loads kafkajs, as the
// adapter does in an application (src/before-kafkajs.ts): many test files import kafkajs before the
// adapter, which would otherwise leave them on kafkajs's own Batch.
import '../src/before-kafkajs.js';
