// No Kafka broker runs here: these tests cover the configuration, the kafkajs
// client options, the message framing, and what happens when the broker is
// unreachable (a closed port on loopback, with the real kafkajs client).
// Delivery to a real broker is not covered.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';

import kafkaLogger, {
  KAFKA_PRODUCER_CONFIG,
  encodeKafkaBatch,
  kafkaClientConfig,
  type KafkaLoggerConf,
} from '../../../src/plugins/builtin/kafka-logger';
import { checkPluginConf, compilePluginConf, testContext } from '../support/test-context';

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('kafka-logger', () => {
  it('fills APISIX defaults and builds the kafkajs client options', () => {
    const checked = checkPluginConf(kafkaLogger, {
      brokers: [
        { host: '127.0.0.1', port: 9092, sasl_config: { user: 'admin', password: 'pw' } },
        { host: 'kafka-2', port: 9093 },
      ],
      kafka_topic: 'logs',
      key: 'k',
      required_acks: -1,
      timeout: 2,
    });
    assert.equal(checked.ok, true);
    const conf = (checked as { conf: Record<string, unknown> }).conf as unknown as KafkaLoggerConf;
    assert.equal(conf.producer_type, 'async');
    assert.equal(conf.meta_format, 'default');
    assert.equal(conf.batch_max_size, 1000);
    const client = kafkaClientConfig(conf);
    assert.deepEqual(client.brokers, ['127.0.0.1:9092', 'kafka-2:9093']);
    assert.equal(client.connectionTimeout, 2000);
    assert.equal(client.requestTimeout, 2000);
    assert.deepEqual(client.retry, { retries: 0 });
    assert.deepEqual(client.sasl, { mechanism: 'plain', username: 'admin', password: 'pw' });
    assert.deepEqual(KAFKA_PRODUCER_CONFIG.retry, { retries: 0 });
  });

  it('accepts the deprecated broker_list', () => {
    const checked = checkPluginConf(kafkaLogger, { broker_list: { '127.0.0.1': 9092 }, kafka_topic: 'logs' });
    assert.equal(checked.ok, true);
    const conf = (checked as { conf: Record<string, unknown> }).conf as unknown as KafkaLoggerConf;
    assert.deepEqual(kafkaClientConfig(conf).brokers, ['127.0.0.1:9092']);
  });

  it('frames a batch as one JSON message (the entry itself when batch_max_size is 1)', () => {
    assert.equal(encodeKafkaBatch([{ a: 1 }], 1), '{"a":1}');
    assert.equal(encodeKafkaBatch([{ a: 1 }, { a: 2 }], 10), '[{"a":1},{"a":2}]');
    assert.equal(encodeKafkaBatch(['GET / HTTP/1.1\r\n\r\n'], 1), 'GET / HTTP/1.1\r\n\r\n');
  });

  it('retries and then drops batches while the broker is unreachable', async () => {
    const port = await closedPort();
    const conf = compilePluginConf(kafkaLogger, {
      brokers: [{ host: '127.0.0.1', port }],
      kafka_topic: 'logs',
      timeout: 1,
      batch_max_size: 2,
      max_retry_count: 1,
      retry_delay: 0,
    });
    kafkaLogger.log!(conf, testContext({ uri: '/a' }));
    kafkaLogger.log!(conf, testContext({ uri: '/b' }));
    await conf.batches.flush();
    assert.deepEqual(conf.batches.stats(), { pending: 0, sent: 0, dropped: 2, failedBatches: 1, retries: 1 });
    await conf.batches.close();
  });

  it('builds origin-format entries from the request', async () => {
    const port = await closedPort();
    const conf = compilePluginConf(kafkaLogger, {
      brokers: [{ host: '127.0.0.1', port }],
      kafka_topic: 'logs',
      meta_format: 'origin',
      include_req_body: true,
    });
    const sent: unknown[] = [];
    const ctx = testContext({ method: 'POST', uri: '/p?q=1', headers: { host: 'h' }, body: 'payload' });
    await kafkaLogger.access!(conf, ctx);
    const original = conf.batches.push.bind(conf.batches);
    conf.batches.push = (entry: unknown) => {
      sent.push(entry);
      return true;
    };
    kafkaLogger.log!(conf, ctx);
    conf.batches.push = original;
    assert.deepEqual(sent, ['POST /p?q=1 HTTP/1.1\r\nhost: h\r\n\r\npayload']);
    await conf.batches.close();
  });

  it('runs access and body_filter only for the bodies it logs; the origin format never holds the response', async () => {
    const port = await closedPort();
    const brokers = [{ host: '127.0.0.1', port }];
    const phasesOf = (extra: Record<string, unknown>) => {
      const conf = compilePluginConf(kafkaLogger, { brokers, kafka_topic: 'logs', ...extra });
      void conf.batches.close();
      return kafkaLogger.phases!(conf);
    };
    assert.deepEqual(phasesOf({}), ['log']);
    assert.deepEqual(phasesOf({ include_req_body: true, include_resp_body: true }), ['access', 'body_filter', 'log']);
    assert.deepEqual(phasesOf({ meta_format: 'origin', include_req_body: true, include_resp_body: true }), [
      'access',
      'log',
    ]);
  });

  it('rejects misconfigurations', () => {
    const check = (conf: unknown) => {
      const result = checkPluginConf(kafkaLogger, conf);
      return result.ok ? 'ok' : result.error;
    };
    assert.notEqual(check({ kafka_topic: 'logs' }), 'ok');
    assert.notEqual(check({ brokers: [{ host: 'h', port: 9092 }] }), 'ok');
    assert.notEqual(check({ brokers: [{ host: 'h', port: 70000 }], kafka_topic: 't' }), 'ok');
    assert.notEqual(check({ brokers: [{ host: 'h', port: 9092 }], kafka_topic: 't', required_acks: 0 }), 'ok');
    assert.notEqual(
      check({ brokers: [{ host: 'h', port: 9092, sasl_config: { user: 'u' } }], kafka_topic: 't' }),
      'ok',
    );
    assert.notEqual(check({ brokers: [], kafka_topic: 't' }), 'ok');
    assert.equal(check({ brokers: [{ host: 'h', port: 9092 }], kafka_topic: 't', producer_type: 'sync' }), 'ok');
  });
});
