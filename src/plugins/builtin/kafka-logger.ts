// kafka-logger: sends log entries to a Kafka topic (kafkajs). Each batch of the
// batch processor is one Kafka message: the JSON array of entries, or the single
// entry when batch_max_size is 1 (APISIX's framing). The producer connects on
// the first batch; kafkajs's own retries are off so that `max_retry_count` and
// `retry_delay` are the only retry policy. `producer_type` sync and async both
// go through the batch processor (nothing is ever sent on the request path).

import { Kafka, logLevel, type KafkaConfig, type Producer, type ProducerConfig, type SASLOptions } from 'kafkajs';

import { SharedBatchQueue, batchProcessorSchemaProperties, type BatchProcessorConf } from '../lib/batch-processor';
import {
  checkLogEntryConf,
  compileLogEntry,
  logBatchOptions,
  logBodyPhases,
  logEntrySchemaProperties,
  logMetadataSchema,
  type LogEntryBuilder,
  type LogEntryConf,
} from '../lib/log-entry';
import type { PluginContext, PluginModule } from '../types';

const NAME = 'kafka-logger';

export interface KafkaBroker {
  readonly host: string;
  readonly port: number;
  readonly sasl_config?: {
    readonly mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';
    readonly user: string;
    readonly password: string;
  };
}

export interface KafkaLoggerConf extends BatchProcessorConf, LogEntryConf {
  readonly brokers?: readonly KafkaBroker[];
  /** Deprecated in APISIX: `{ "host": port }`. */
  readonly broker_list?: Readonly<Record<string, number>>;
  readonly kafka_topic: string;
  readonly key?: string;
  readonly producer_type: 'async' | 'sync';
  readonly required_acks: 1 | -1;
  readonly timeout: number;
  readonly meta_format: 'default' | 'origin';
  readonly cluster_name: number;
}

export interface CompiledKafkaLogger {
  readonly conf: KafkaLoggerConf;
  readonly entries: LogEntryBuilder;
  readonly batches: SharedBatchQueue<unknown>;
}

/** The kafkajs client configuration for a logger configuration. */
export function kafkaClientConfig(conf: KafkaLoggerConf): KafkaConfig {
  const brokers = conf.brokers ?? Object.entries(conf.broker_list ?? {}).map(([host, port]) => ({ host, port }));
  const sasl = (brokers as readonly KafkaBroker[]).find((broker) => broker.sasl_config !== undefined)?.sasl_config;
  const timeoutMs = conf.timeout * 1000;
  const config: KafkaConfig = {
    clientId: `palisade-${NAME}-${conf.cluster_name}`,
    brokers: brokers.map((broker) => `${broker.host}:${broker.port}`),
    connectionTimeout: timeoutMs,
    requestTimeout: timeoutMs,
    // The batch processor retries (max_retry_count, retry_delay); kafkajs gives up at once.
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  };
  if (sasl !== undefined) {
    const mechanism = sasl.mechanism.toLowerCase() as 'plain' | 'scram-sha-256' | 'scram-sha-512';
    config.sasl = { mechanism, username: sasl.user, password: sasl.password } as SASLOptions;
  }
  return config;
}

export const KAFKA_PRODUCER_CONFIG: ProducerConfig = { allowAutoTopicCreation: true, retry: { retries: 0 } };

/** One producer per compiled configuration, connected lazily and reset after a failure. */
export class KafkaSender {
  readonly client: Kafka;
  #producer: Producer | undefined;
  #connecting: Promise<Producer> | undefined;
  readonly #conf: KafkaLoggerConf;

  constructor(conf: KafkaLoggerConf) {
    this.#conf = conf;
    this.client = new Kafka(kafkaClientConfig(conf));
  }

  async send(value: string): Promise<void> {
    const producer = await this.#connect();
    try {
      await producer.send({
        topic: this.#conf.kafka_topic,
        acks: this.#conf.required_acks,
        timeout: this.#conf.timeout * 1000,
        messages: [{ key: this.#conf.key ?? null, value }],
      });
    } catch (error) {
      await this.close();
      throw new Error(`failed to send data to Kafka topic: ${(error as Error).message}`);
    }
  }

  #connect(): Promise<Producer> {
    if (this.#producer !== undefined) return Promise.resolve(this.#producer);
    this.#connecting ??= (async () => {
      const producer = this.client.producer(KAFKA_PRODUCER_CONFIG);
      try {
        await producer.connect();
      } catch (error) {
        await producer.disconnect().catch(() => undefined);
        throw new Error(`failed to connect to Kafka brokers: ${(error as Error).message}`);
      } finally {
        this.#connecting = undefined;
      }
      this.#producer = producer;
      return producer;
    })();
    return this.#connecting;
  }

  async close(): Promise<void> {
    const producer = this.#producer;
    this.#producer = undefined;
    if (producer !== undefined) await producer.disconnect().catch(() => undefined);
  }
}

/** `meta_format: origin`: the request as text (request line, the headers read, body when captured). */
function originEntry(ctx: PluginContext, plugin: string): string {
  const lines = [`${ctx.method} ${ctx.requestUri} HTTP/1.1`];
  for (const name of ['host', 'user-agent', 'accept', 'content-type', 'content-length']) {
    const value = ctx.header(name);
    if (value !== undefined) lines.push(`${name}: ${value}`);
  }
  const body = ctx.scratch(plugin).requestBody;
  return lines.join('\r\n') + '\r\n\r\n' + (typeof body === 'string' ? body : '');
}

/** The Kafka message value for a batch. */
export function encodeKafkaBatch(entries: readonly unknown[], batchMaxSize: number): string {
  if (batchMaxSize === 1 && entries.length === 1) {
    return typeof entries[0] === 'string' ? entries[0] : JSON.stringify(entries[0]);
  }
  return JSON.stringify(entries);
}

const saslSchema = {
  type: 'object',
  properties: {
    mechanism: { type: 'string', enum: ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'], default: 'PLAIN' },
    user: { type: 'string' },
    password: { type: 'string' },
  },
  required: ['user', 'password'],
};

const kafkaLogger: PluginModule<CompiledKafkaLogger> = {
  name: NAME,
  version: '0.1',
  priority: 403,
  schema: {
    type: 'object',
    properties: {
      meta_format: { type: 'string', enum: ['default', 'origin'], default: 'default' },
      broker_list: {
        type: 'object',
        minProperties: 1,
        patternProperties: { '.*': { type: 'integer', minimum: 1, maximum: 65535 } },
      },
      brokers: {
        type: 'array',
        minItems: 1,
        uniqueItems: true,
        items: {
          type: 'object',
          properties: {
            host: { type: 'string' },
            port: { type: 'integer', minimum: 1, maximum: 65535 },
            sasl_config: saslSchema,
          },
          required: ['host', 'port'],
        },
      },
      kafka_topic: { type: 'string' },
      producer_type: { type: 'string', enum: ['async', 'sync'], default: 'async' },
      required_acks: { type: 'integer', enum: [1, -1], default: 1 },
      key: { type: 'string' },
      timeout: { type: 'integer', minimum: 1, default: 3 },
      cluster_name: { type: 'integer', minimum: 1, default: 1 },
      producer_batch_num: { type: 'integer', minimum: 1, default: 200 },
      producer_batch_size: { type: 'integer', minimum: 0, default: 1048576 },
      producer_max_buffering: { type: 'integer', minimum: 1, default: 50000 },
      producer_time_linger: { type: 'integer', minimum: 1, default: 1 },
      meta_refresh_interval: { type: 'integer', minimum: 1, default: 30 },
      ...logEntrySchemaProperties,
      ...batchProcessorSchemaProperties,
    },
    oneOf: [{ required: ['broker_list', 'kafka_topic'] }, { required: ['brokers', 'kafka_topic'] }],
  },
  metadataSchema: logMetadataSchema,

  check(conf, kind) {
    if (kind !== 'route') return undefined;
    return checkLogEntryConf(conf as KafkaLoggerConf);
  },

  compile(raw, env) {
    const conf = raw as KafkaLoggerConf;
    // One producer per shared queue: opened with it, disconnected when it is retired.
    const open = () => {
      const sender = new KafkaSender(conf);
      return {
        send: (entries: readonly unknown[]) => sender.send(encodeKafkaBatch(entries, conf.batch_max_size)),
        close: () => sender.close(),
      };
    };
    const entries = compileLogEntry(conf, env.metadata);
    return {
      conf,
      entries,
      batches: new SharedBatchQueue<unknown>(NAME, conf, open, env.log, logBatchOptions(entries)),
    };
  },

  ...logBodyPhases<CompiledKafkaLogger>(NAME),

  phases(compiled) {
    // meta_format origin sends the request as text: a response body has no place in it.
    if (compiled.conf.meta_format === 'origin')
      return compiled.entries.phases.filter((phase) => phase !== 'body_filter');
    return compiled.entries.phases;
  },

  log(compiled, ctx) {
    const entry = compiled.conf.meta_format === 'origin' ? originEntry(ctx, NAME) : compiled.entries.build(ctx, NAME);
    compiled.batches.push(entry);
  },
};

export default kafkaLogger;
