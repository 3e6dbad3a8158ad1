// Exits 0 when the NATS server at NATS_URL (default 127.0.0.1:4222) answers with JetStream on, 1 otherwise.
import { connect } from '@nats-io/transport-node';

try {
  const nc = await connect({ servers: process.env.NATS_URL ?? '127.0.0.1:4222', timeout: 2_000 });
  try {
    const info = (await nc.request('$JS.API.INFO', '', { timeout: 2_000 })).json();
    if (info.error) throw new Error(info.error.description);
  } finally {
    await nc.close();
  }
} catch (error) {
  console.error(`JetStream is not available: ${error.message}`);
  process.exit(1);
}
