/**
 * Requests Node's HTTP parser refuses before they reach the app (bad framing, oversized headers, garbage)
 * get a complete HTTP/1.1 response with the same JSON error body as every other 4xx, then the connection
 * closes: after a framing error nothing else on it can be trusted. Node's default is an empty 400 or 431.
 */
import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';

type ParserError = Error & { code?: string; reason?: string };

/** Status and message for a parser error code (llhttp's HPE_* and Node's own). */
export function describeClientError(err: ParserError): { status: number; message: string } {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, message: 'request line or headers are too large' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'ERR_HTTP_HEADERS_TIMEOUT':
      return { status: 408, message: 'request not received in time' };
    case 'HPE_INVALID_CHUNK_SIZE':
      return { status: 400, message: 'malformed chunked body: invalid chunk size' };
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
      return { status: 400, message: 'request has both Content-Length and Transfer-Encoding' };
    case 'HPE_INVALID_TRANSFER_ENCODING':
      return {
        status: 400,
        message: /content-length/i.test(err.reason ?? '')
          ? 'request has both Content-Length and Transfer-Encoding'
          : 'invalid Transfer-Encoding header',
      };
    case 'HPE_INVALID_CONTENT_LENGTH':
      return { status: 400, message: 'invalid Content-Length header' };
    case 'HPE_INVALID_EOF_STATE':
      return { status: 400, message: 'request ended before its body was complete' };
    case 'HPE_INVALID_METHOD':
    case 'HPE_INVALID_URL':
    case 'HPE_INVALID_VERSION':
    case 'HPE_INVALID_CONSTANT':
      return { status: 400, message: 'malformed request line' };
    default:
      return {
        status: 400,
        message: `malformed HTTP request${err.code?.startsWith('HPE_') ? ` (${err.code.slice(4).toLowerCase().replaceAll('_', ' ')})` : ''}`,
      };
  }
}

const REASONS: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };

export function answerClientErrors(server: Server): void {
  server.on('clientError', (err: ParserError, socket: Duplex) => {
    // A reset peer hears nothing; a socket whose response has begun cannot take another one.
    const busy = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
    if (err.code === 'ECONNRESET' || !socket.writable || busy) {
      socket.destroy();
      return;
    }
    const { status, message } = describeClientError(err);
    const body = JSON.stringify({ error: message });
    socket.end(
      `HTTP/1.1 ${status} ${REASONS[status] ?? 'Bad Request'}\r\n` +
        'Content-Type: application/json\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        'Connection: close\r\n\r\n' +
        body,
    );
    // end() flushes then closes; destroy only if the peer never takes the bytes.
    setTimeout(() => socket.destroy(), 5000).unref();
  });
}
