import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics for one instance, served at `GET /metrics`. */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();
  readonly eventsWritten = new Counter({ name: 'seqline_events_written_total', help: 'Events written to conversation logs', labelNames: ['type'], registers: [this.registry] });
  readonly commandsRefused = new Counter({ name: 'seqline_commands_refused_total', help: 'Agent commands refused, by error code', labelNames: ['code'], registers: [this.registry] });
  readonly writePartitions = new Gauge({ name: 'seqline_write_partitions_owned', help: 'Write partitions this instance owns and answers agent commands for', registers: [this.registry] });
  readonly commandsByRoute = new Counter({ name: 'seqline_agent_commands_total', help: 'Agent commands handled, by the subject they came on (partition owner, any instance, or in a batch to this instance)', labelNames: ['route'], registers: [this.registry] });
  readonly writesForwarded = new Counter({ name: 'seqline_writes_forwarded_total', help: 'Writes for a conversation whose partition another instance owns: handed to the owner (owner), made here because no instance owns it (no_owner) or the owner did not answer in time (owner_timeout)', labelNames: ['outcome'], registers: [this.registry] });
  readonly writeConflicts = new Counter({ name: 'seqline_write_conflicts_total', help: 'Log writes retried because another writer went first', registers: [this.registry] });
  readonly statesRebuilt = new Counter({ name: 'seqline_writer_states_rebuilt_total', help: "Conversation states the writer built again from Postgres: the log dropped events its cache had not seen (gap), a refusal stood after catching up (refusal), the log's subject was empty (emptied) or ended before the state (behind)", labelNames: ['reason'], registers: [this.registry] });
  readonly persistFlushes = new Counter({ name: 'seqline_persist_flushes_total', help: 'Batches written to Postgres', registers: [this.registry] });
  readonly persistFlushFailures = new Counter({ name: 'seqline_persist_flush_failures_total', help: 'Attempts to write a batch to Postgres that failed (the batch is tried again)', registers: [this.registry] });
  readonly persistRowWrites = new Counter({ name: 'seqline_persist_row_writes_total', help: 'Message rows inserted or updated in Postgres', registers: [this.registry] });
  readonly persistEvents = new Counter({ name: 'seqline_persist_events_total', help: 'Log events applied to Postgres', registers: [this.registry] });
  readonly persistRefilledEvents = new Counter({ name: 'seqline_persist_refilled_events_total', help: 'Log events the persister read from the log itself because its consumer did not deliver them again', registers: [this.registry] });
  readonly persistFlushSeconds = new Histogram({ name: 'seqline_persist_flush_seconds', help: 'Time to write one batch', buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers: [this.registry] });
  readonly devices = new Gauge({ name: 'seqline_devices_connected', help: 'Open device WebSockets', registers: [this.registry] });
  readonly subscriptions = new Gauge({ name: 'seqline_subscriptions_open', help: 'Open WebSocket and SSE subscriptions', registers: [this.registry] });
  readonly persisterLagEvents = new Gauge({ name: 'seqline_persister_lag_events', help: 'Log events not yet written to Postgres (as of the last health check)', registers: [this.registry] });
  readonly persisterLagSeconds = new Gauge({ name: 'seqline_persister_lag_seconds', help: 'Age of the oldest log event not yet written to Postgres (as of the last health check)', registers: [this.registry] });
  readonly holes = new Counter({ name: 'seqline_log_holes_total', help: 'Holes recorded: log events Postgres will never get (reason: retention, undecodable, fork)', labelNames: ['reason'], registers: [this.registry] });
  readonly poisonEvents = new Counter({ name: 'seqline_poison_events_total', help: 'Log events the persister could not decode and skipped', registers: [this.registry] });
  readonly unknownEvents = new Counter({ name: 'seqline_unknown_event_types_total', help: 'Log event types this version does not know, counted once per type in each persister batch that met them', registers: [this.registry] });
  readonly epochArchives = new Counter({ name: 'seqline_epoch_archives_total', help: 'Conversations whose rows were archived because the log was recreated', registers: [this.registry] });
  readonly leadershipChanges = new Counter({ name: 'seqline_leadership_changes_total', help: 'Times this instance gained or lost the persister lease', labelNames: ['held'], registers: [this.registry] });
  readonly epochChanges = new Counter({ name: 'seqline_log_epoch_changes_total', help: 'Times this instance saw the log stream recreated', registers: [this.registry] });
  readonly liveFeeds = new Gauge({ name: 'seqline_live_feeds', help: 'Conversations with a live feed on this instance', registers: [this.registry] });
  readonly recentLogReads = new Counter({ name: 'seqline_recent_log_reads_total', help: 'Catch-ups served from the recent log in memory instead of a JetStream read', registers: [this.registry] });
  readonly recentLogBytes = new Gauge({ name: 'seqline_recent_log_bytes', help: 'Memory held by the recent log (as of the last sweep)', registers: [this.registry] });
  readonly liveFeedRestarts = new Counter({ name: 'seqline_live_feed_restarts_total', help: 'Times the instance feed of the log was set up again', registers: [this.registry] });
  readonly slowConsumers = new Counter({ name: 'seqline_slow_consumers_total', help: 'Devices disconnected for falling behind', registers: [this.registry] });

  constructor() {
    // Sampling the event loop every 10 ms (the default) wakes an idle server 100 times a second.
    // (At one second the lag histogram stops meaning anything: its percentiles read near 900 ms.)
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
  }
}
