// The Node floor for consuming: a reader with no Kafka client at all — Fetch v4
// requests written by hand on one socket per partition leader, record batches
// parsed in place — doing per record only what any client must hand its user:
// key and value as Buffer views, header names and values as strings, the offset.
// No group, no commits, no compression (busline publishes uncompressed by
// default), nothing on error but a thrown Error: a measuring stick for
// `pnpm bench:kafka`, not a client. What a record costs above this line is the
// client's and busline's, not Node's.
import net from 'node:net';
import kafkajs from 'kafkajs';

const FETCH = 1;
const FETCH_VERSION = 4;
const MAX_WAIT_MS = 250;
const MAX_BYTES = 10 * 1024 * 1024;
const MAX_PARTITION_BYTES = 1024 * 1024;
/** Record batch v2 header: offset(8) length(4) epoch(4) magic(1) crc(4) attributes(2) lastOffsetDelta(4) timestamps(16) producer(14) count(4). */
const BATCH_HEADER = 61;

/** Header names by position: records of one producer repeat them in the same order. */
class HeaderNames {
  names = [];
  at(i, b, start, end) {
    const last = this.names[i];
    if (last !== undefined && last.length === end - start) {
      let j = 0;
      while (j < last.length && last.charCodeAt(j) === b[start + j]) j++;
      if (j === last.length) return last;
    }
    return (this.names[i] = b.toString('utf8', start, end));
  }
}

/** One leader's partitions of `topic`, fetched in a loop from offset 0: resolves when `done()` says so. */
function fetchLoop(host, port, topic, partitions, onRecord, done) {
  const socket = net.connect(port, host);
  const next = new Map(partitions.map((p) => [p, 0]));
  const names = new HeaderNames();
  const topicBytes = Buffer.from(topic);
  let correlation = 0;

  const request = () => {
    const body = Buffer.alloc(2 + 2 + 4 + 2 + 4 + 4 + 4 + 4 + 1 + 4 + 2 + topicBytes.length + 4 + partitions.length * 16);
    let o = body.writeInt16BE(FETCH, 0);
    o = body.writeInt16BE(FETCH_VERSION, o);
    o = body.writeInt32BE(++correlation, o);
    o = body.writeInt16BE(0, o); // client id: empty
    o = body.writeInt32BE(-1, o); // replica id: a consumer
    o = body.writeInt32BE(MAX_WAIT_MS, o);
    o = body.writeInt32BE(1, o);
    o = body.writeInt32BE(MAX_BYTES, o);
    o = body.writeInt8(0, o); // read uncommitted, as ConsumerPerformance
    o = body.writeInt32BE(1, o);
    o = body.writeInt16BE(topicBytes.length, o);
    o += topicBytes.copy(body, o);
    o = body.writeInt32BE(partitions.length, o);
    for (const p of partitions) {
      o = body.writeInt32BE(p, o);
      o = body.writeBigInt64BE(BigInt(next.get(p)), o);
      o = body.writeInt32BE(MAX_PARTITION_BYTES, o);
    }
    const size = Buffer.alloc(4);
    size.writeInt32BE(body.length);
    socket.write(Buffer.concat([size, body]));
  };

  /** A Fetch v4 response (after its size): every record of every complete batch to `onRecord`. */
  const parse = (b) => {
    let pos = 8; // correlation id, throttle time
    // Kafka's zigzag varints (int32 and int64 alike), in double arithmetic: exact for every value a record holds here.
    const varint = () => {
      let v = 0;
      let scale = 1;
      let x;
      do {
        x = b[pos++];
        v += (x & 0x7f) * scale;
        scale *= 128;
      } while (x & 0x80);
      return v % 2 === 0 ? v / 2 : -(v + 1) / 2;
    };
    const topics = b.readInt32BE(pos);
    pos += 4;
    for (let t = 0; t < topics; t++) {
      pos += 2 + b.readInt16BE(pos);
      const count = b.readInt32BE(pos);
      pos += 4;
      for (let q = 0; q < count; q++) {
        const partition = b.readInt32BE(pos);
        const error = b.readInt16BE(pos + 4);
        if (error !== 0) throw new Error(`minimal reader: fetch of ${topic}/${partition} failed with Kafka error code ${error}`);
        pos += 4 + 2 + 8 + 8; // partition, error, high watermark, last stable offset
        const aborted = b.readInt32BE(pos);
        pos += 4 + Math.max(aborted, 0) * 16;
        const size = b.readInt32BE(pos);
        pos += 4;
        const end = pos + Math.max(size, 0);
        while (pos + BATCH_HEADER <= end) {
          const base = Number(b.readBigInt64BE(pos));
          const batchEnd = pos + 12 + b.readInt32BE(pos + 8);
          if (batchEnd > end) break; // a partial batch at the end of the fetch: fetched again next time
          const attributes = b.readInt16BE(pos + 21);
          if ((attributes & 0x07) !== 0) throw new Error('minimal reader: compressed batches are not read (publish with compression none)');
          const baseTimestamp = Number(b.readBigInt64BE(pos + 27));
          const records = b.readInt32BE(pos + 57);
          const control = (attributes & 0x20) !== 0;
          pos += BATCH_HEADER;
          for (let i = 0; i < records; i++) {
            varint(); // record length
            pos++; // attributes
            const timestamp = baseTimestamp + varint();
            const offset = base + varint();
            const keyLength = varint();
            const key = keyLength < 0 ? null : b.subarray(pos, pos + keyLength);
            if (keyLength > 0) pos += keyLength;
            const valueLength = varint();
            const value = valueLength < 0 ? null : b.subarray(pos, pos + valueLength);
            if (valueLength > 0) pos += valueLength;
            const headerCount = varint();
            const headers = {};
            for (let h = 0; h < headerCount; h++) {
              const nameLength = varint();
              const name = names.at(h, b, pos, pos + nameLength);
              pos += nameLength;
              const length = varint();
              if (length >= 0) {
                headers[name] = b.toString('utf8', pos, pos + length);
                pos += length;
              }
            }
            next.set(partition, offset + 1);
            if (!control) onRecord({ key, value, headers, offset, timestamp });
          }
          pos = batchEnd;
        }
        pos = end;
      }
    }
  };

  return new Promise((resolve, reject) => {
    let chunks = [];
    let have = 0;
    let need = -1;
    let finished = false;
    socket.on('error', reject);
    socket.on('close', () => finished || reject(new Error(`minimal reader: the connection to ${host}:${port} closed before ${topic} was read`)));
    socket.on('connect', request);
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      have += chunk.length;
      try {
        for (;;) {
          if (need < 0) {
            if (have < 4) return;
            chunks = [chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)];
            need = 4 + chunks[0].readInt32BE(0);
          }
          if (have < need) return;
          const all = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
          const rest = all.subarray(need);
          parse(all.subarray(4, need));
          chunks = rest.length ? [rest] : [];
          have = rest.length;
          need = -1;
          if (done()) {
            finished = true;
            socket.destroy();
            return resolve();
          }
          request();
        }
      } catch (error) {
        finished = true;
        socket.destroy();
        reject(error);
      }
    });
  });
}

/**
 * Reads `count` records of `topic` from the start, across its partitions (one
 * socket per leader), calling `onRecord(record)` for each; resolves when
 * `count` were read.
 */
export async function minimalRead({ brokers, topic, count, onRecord }) {
  const admin = new kafkajs.Kafka({ brokers, clientId: 'busline-bench-minimal-reader', logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  let leaders;
  try {
    const [{ brokers: nodes }, { topics }] = await Promise.all([admin.describeCluster(), admin.fetchTopicMetadata({ topics: [topic] })]);
    const byNode = new Map();
    for (const { partitionId, leader } of topics[0].partitions) byNode.set(leader, [...(byNode.get(leader) ?? []), partitionId]);
    leaders = [...byNode].map(([node, partitions]) => ({ ...nodes.find((n) => n.nodeId === node), partitions }));
  } finally {
    await admin.disconnect();
  }
  let read = 0;
  const counted = (record) => {
    read++;
    onRecord(record);
  };
  await Promise.all(leaders.map(({ host, port, partitions }) => fetchLoop(host, port, topic, partitions, counted, () => read >= count)));
  return read;
}
