import { Controller, Get, Header } from '@nestjs/common';
import { within } from '../core/within.js';
import { LogPersister } from '../persist/log-persister.service.js';
import { MetricsService } from './metrics.service.js';

/** The persister's lag is read for each scrape, at most this long: a scrape during an election still answers. */
const LAG_READ_MS = 2_000;

@Controller('metrics')
export class MetricsController {
  constructor(
    private readonly metrics: MetricsService,
    private readonly persister: LogPersister,
  ) {}

  @Get()
  @Header('content-type', 'text/plain; version=0.0.4')
  async scrape(): Promise<string> {
    // The lag gauges are current on every scrape, not only after a readiness check; unread, they keep their last value.
    await within(this.persister.lag(), LAG_READ_MS).catch(() => undefined);
    return this.metrics.registry.metrics();
  }
}
