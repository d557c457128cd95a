import kafkajs, { type Mechanism } from 'kafkajs';

/**
 * SASL OAUTHBEARER for kafkajs that reads the broker's answer to the token.
 *
 * kafkajs 2.2.4's own OAUTHBEARER authenticator sends the token and ignores
 * the answer. A broker that refuses a token (expired, wrong audience, bad
 * signature) does not answer with an error code: as RFC 7628 says, it sends
 * an error challenge (`{"status":"invalid_token"}`) and closes the connection
 * at the client's next request. kafkajs then reports "Closed connection",
 * which reads as an unreachable broker (BROKER_UNAVAILABLE, retried) rather
 * than a token to fix. Here a challenge is a refusal: kafkajs's
 * KafkaJSSASLAuthenticationError with the broker's status, which the adapter
 * reports as AUTH_FAILED. The message sent is kafkajs's (RFC 7628 initial
 * client response, with the token's `extensions` if any).
 */
export interface OAuthBearerToken {
  value: string;
  extensions?: Record<string, string>;
}

const SOH = '\u0001';

export function oauthBearerMechanism(provide: () => Promise<OAuthBearerToken>): Mechanism {
  return {
    mechanism: 'oauthbearer',
    authenticationProvider: ({ saslAuthenticate }) => ({
      authenticate: async () => {
        const token = await provide();
        if (typeof token?.value !== 'string' || token.value === '') {
          throw saslError('SASL OAUTHBEARER: kafka.sasl.oauthBearerProvider gave no token (it must resolve to { value: string })');
        }
        const extensions = Object.entries(token.extensions ?? {})
          .map(([name, value]) => `${SOH}${name}=${value}`)
          .join('');
        const message = Buffer.from(`n,,${SOH}auth=Bearer ${token.value}${extensions}${SOH}${SOH}`);
        const challenge = await saslAuthenticate<Buffer>({
          // Kafka BYTES: an int32 length, then the message.
          request: { encode: () => Buffer.concat([int32(message.length), message]) },
          // The answer comes as Kafka BYTES too: empty when the token was accepted.
          response: { decode: async (bytes: Buffer) => bytes, parse: readBytes },
        });
        if (challenge && challenge.length > 0) {
          throw saslError(`SASL OAUTHBEARER: the broker refused the token of kafka.sasl.oauthBearerProvider (${challenge.toString('utf8')})`);
        }
      },
    }),
  };
}

/** kafkajs's own error for a refused authentication (its types declare no message argument; its class takes one). */
function saslError(message: string): Error {
  return new (kafkajs.KafkaJSSASLAuthenticationError as unknown as new (message: string) => Error)(message);
}

function readBytes(bytes: Buffer): Buffer {
  if (bytes.length < 4) return bytes;
  const length = bytes.readInt32BE(0);
  return bytes.subarray(4, 4 + Math.max(0, length));
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}
