/** The adapter READMEs' config snippets, as written there (compiled by `tsc -b`, never run). */
import { createEventBus } from '@busline/core';
import type {} from '@busline/adapter-kafka'; // types the kafka section
import type {} from '@busline/adapter-nats'; // types the nats section

// adapter-kafka README: credentials go in the sasl option
const kafka = await createEventBus({
  url: 'kafka://broker-1:9093,broker-2:9093',
  kafka: { ssl: true, sasl: { mechanism: 'scram-sha-512', username: 'orders', password: process.env.KAFKA_PASSWORD ?? '' } },
});

// adapter-nats README: tls://
const nats = await createEventBus({ url: 'tls://nats.internal:4443', nats: { tls: { caFile: '/etc/ssl/nats-ca.pem' } } });

export { kafka, nats };
