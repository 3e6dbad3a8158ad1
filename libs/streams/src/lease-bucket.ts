import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { retryTransient } from './election-retry.js';

export interface LeaseBucketOptions {
  bucket: string;
  ttlMs: number;
  replicas?: number;
}

/**
 * Creates a lease bucket, or opens it as it is. Creating one that exists changes nothing, so it is
 * also how a bucket that went (NATS restarted without its data, the bucket deleted) comes back.
 */
export function createLeaseBucket(nc: NatsConnection, options: LeaseBucketOptions): Promise<KV> {
  // At start, possibly while the cluster elects a leader: waited for, not fatal.
  return retryTransient(() => new Kvm(nc).create(options.bucket, { ttl: options.ttlMs, history: 1, replicas: options.replicas ?? 1 }));
}
