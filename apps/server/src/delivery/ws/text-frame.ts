/**
 * A server-to-client WebSocket text frame (RFC 6455 §5.2: FIN set, opcode 1, never masked), as
 * the bytes that go on the wire. A live event is framed once and those same bytes are written
 * to every device's socket, like gorilla/websocket's PreparedMessage: no header, array or writev
 * per device, where `ws.send` would build each of them per socket.
 */
export function textFrame(text: string): Buffer {
  const length = Buffer.byteLength(text);
  const headerLength = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLength + length);
  frame[0] = 0x81;
  if (length < 126) {
    frame[1] = length;
  } else if (length < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  frame.write(text, headerLength);
  return frame;
}

/** An empty ping (RFC 6455 §5.5.2: FIN set, opcode 9, no payload); devices answer with a pong. */
export const PING_FRAME: Buffer = Buffer.from([0x89, 0x00]);
