/** The directory of Kafka's jars, or undefined when scripts/brokers has not fetched them yet. */
export function kafkaLibs(): string | undefined;
