/**
 * Server-sent events as OpenAI streams them: `data: <json>\n\n` per chunk, `data: [DONE]\n\n` at the end.
 * Headers go out with the first event, so a request refused before it starts (unknown steer, full queue)
 * still gets a plain HTTP error status instead of a 200 stream holding an error.
 */
import type { ServerResponse } from 'node:http';

export class SseWriter {
  constructor(private readonly res: ServerResponse) {}

  get started(): boolean {
    return this.res.headersSent;
  }

  get closed(): boolean {
    return this.res.writableEnded || this.res.destroyed;
  }

  /** Send the 200 and the stream headers now (no event). */
  start(): void {
    if (this.res.headersSent || this.closed) return;
    this.res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no', // proxies (nginx) would otherwise hold the stream back
    });
    this.res.flushHeaders();
  }

  send(data: unknown): void {
    if (this.closed) return;
    this.start();
    this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** End the stream with `data: [DONE]`. */
  done(): void {
    if (this.closed) return;
    this.start();
    this.res.end('data: [DONE]\n\n');
  }
}
