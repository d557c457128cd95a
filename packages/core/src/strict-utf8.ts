/**
 * How busline decodes every body it reads as text (envelope JSON, structured
 * CloudEvents, foreign messages). Fatal: invalid bytes throw instead of
 * becoming U+FFFD; ignoreBOM: a BOM is kept, so JSON.parse refuses it.
 */
export const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
