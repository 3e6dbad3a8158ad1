import { Controller, Get, HttpException, HttpStatus } from '@nestjs/common';
import { LogStream } from '@seqline/streams';

/** `GET /health`: ready when NATS is connected. */
@Controller('health')
export class HealthController {
  constructor(private readonly stream: LogStream) {}

  @Get()
  check(): { status: 'ok'; epoch: string } {
    if (this.stream.nc.isClosed()) throw new HttpException({ status: 'down' }, HttpStatus.SERVICE_UNAVAILABLE);
    return { status: 'ok', epoch: this.stream.epoch };
  }
}
