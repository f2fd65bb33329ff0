/**
 * The HTTP surface: routing, the API key, request bodies (size-limited JSON), and the small endpoints
 * (models, steers, health, metrics, the playground's static files). Generation lives in completions.ts.
 *
 *   GET  /                          the playground (playground/index.html, app.js, style.css)
 *   GET  /health                    {"status": "ok", …}; never needs the key
 *   GET  /metrics                   Prometheus text
 *   GET  /v1/models                 the model served, under each of its served names
 *   GET  /v1/models/{id}            one of them (404 model_not_found otherwise)
 *   POST /v1/completions            OpenAI completions (+ "steer")
 *   POST /v1/chat/completions       OpenAI chat completions (+ "steer")
 *   GET  /v1/steers                 loaded steers: slots, server defaults, file defaults
 *   POST /v1/steers {"path": DIR}   load a steer folder (checked against the model's fingerprint); 201
 *   GET  /v1/steers/{name}          one steer
 *   DELETE /v1/steers/{name}        unload it
 *   GET  /v1/steers/{name}/dims     the words each steer direction moves (src/lens/explain.ts)
 *   POST /v1/explain                evidence of a text under a steer (src/lens/explain.ts)
 *
 * Before routing, access.ts refuses (403) foreign Host names (DNS rebinding) and cross-origin browser requests
 * (except from --cors origins, which get CORS headers on every answer and their OPTIONS preflights answered).
 * Every error, 4xx or 5xx, is an OpenAI error body {"error": {"message", "type", "code", "param"}}.
 * With an API key, everything but /, its static files and /health needs `Authorization: Bearer KEY` (401);
 * /health then shows only its status to clients without the key.
 * POST /v1/steers reads folders from the server's disk: off unless started with --allow-steer-load ROOT, and
 * then only folders under the roots.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { LmSteerError } from '../util/errors.js';
import { checkAccess, corsHeaders, resolveSteerPath, type AccessPolicy } from './access.js';
import { handleChat, handleCompletion, type GenerationContext } from './completions.js';
import type { Lens } from './lens.js';
import { ApiError, errorBody, parseBody, parseJsonBody, statusOf } from './openai.js';
import type { SteerBase } from '../steer/steerSet.js';

export interface RouteContext extends GenerationContext {
  base: SteerBase;
  apiKey?: string;
  access: AccessPolicy;
  maxBodyBytes: number;
  lens?: Lens;
  startedAt: number;
}

const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};
const staticCache = new Map<string, Buffer>();
function staticFile(name: string): Buffer {
  let b = staticCache.get(name);
  if (!b) staticCache.set(name, (b = readFileSync(new URL(`./playground/${name}`, import.meta.url))));
  return b;
}

/** The playground loads only its own files and talks only to this server; nothing may frame it. */
const PAGE_HEADERS = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
};

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff', ...headers });
  res.end(JSON.stringify(body));
}

function sha(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function authorized(ctx: RouteContext, req: IncomingMessage): boolean {
  if (!ctx.apiKey) return true;
  const h = req.headers.authorization ?? '';
  const m = /^Bearer\s+(.+)$/i.exec(h);
  const given = m?.[1]?.trim() ?? (req.headers['x-api-key'] as string | undefined) ?? '';
  return timingSafeEqual(sha(given), sha(ctx.apiKey)); // hashes: equal lengths, no length leak
}

/** Read a JSON body of at most `limit` bytes (413 beyond it; 400 for bad JSON). */
async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const tooBig = () =>
    new ApiError(
      413,
      'LIMIT',
      `the request body is larger than this server's limit of ${limit} bytes`,
      'send a shorter prompt, or raise --max-body-bytes',
    );
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooBig();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooBig();
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new ApiError(400, 'BAD_ARGUMENT', 'the request body is empty', 'send a JSON object');
  return parseJsonBody(text);
}

/** After a 413, stop reading a body that may be huge: discard a little, then drop the connection. */
function discardBody(req: IncomingMessage, res: ServerResponse, limit: number): void {
  if (req.complete) return;
  let drained = 0;
  req.on('data', (c: Buffer) => {
    drained += c.length;
    if (drained > 4 * limit + 65536) req.destroy();
  });
  res.on('finish', () => setTimeout(() => req.destroy(), 1000).unref());
  req.resume();
}

const LoadSteerSchema = z.looseObject({ path: z.string().min(1), force: z.boolean().nullish() });

/** The metrics label of a path: fixed routes as they are, parameters as {name}. */
function routeLabel(method: string, path: string): string {
  if (path.startsWith('/v1/steers/')) return `${method} /v1/steers/{name}${path.endsWith('/dims') ? '/dims' : ''}`;
  if (path.startsWith('/v1/models/')) return `${method} /v1/models/{id}`;
  if (path in STATIC) return 'GET /static';
  if (
    [
      '/health',
      '/metrics',
      '/v1/models',
      '/v1/completions',
      '/v1/chat/completions',
      '/v1/steers',
      '/v1/explain',
    ].includes(path)
  )
    return `${method} ${path}`;
  return 'other';
}

export function createHandler(ctx: RouteContext): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const t0 = performance.now();
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const done = (status: number) =>
      ctx.metrics.request(routeLabel(method, path), status, (performance.now() - t0) / 1000);
    route(ctx, req, res, method, path).then(
      (status) => done(status),
      (e: unknown) => {
        // A client that went away is logged as nginx does (499); nobody reads the body.
        const status = res.destroyed && !res.writableFinished ? 499 : statusOf(e);
        if (status === 500) console.error(`lmsteer serve: internal error on ${method} ${path}:`, e);
        if (status === 413) {
          res.setHeader('Connection', 'close');
          discardBody(req, res, ctx.maxBodyBytes);
        }
        sendJson(res, status, errorBody(e, status), status === 401 ? { 'WWW-Authenticate': 'Bearer' } : {});
        done(status);
      },
    );
  };
}

function methodNotAllowed(method: string, path: string, allowed: string[]): ApiError {
  return new ApiError(405, 'BAD_ARGUMENT', `${method} ${path} is not supported`, `use ${allowed.join(' or ')}`);
}

async function route(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  method: string,
  path: string,
): Promise<number> {
  checkAccess(ctx.access, req);
  if (method === 'OPTIONS') {
    // A CORS preflight (answered with headers only for --cors origins), before the key: browsers send none here.
    res.writeHead(204, { Allow: 'GET, POST, DELETE, OPTIONS', ...corsHeaders(ctx.access, req, true) });
    res.end();
    return 204;
  }
  for (const [k, v] of Object.entries(corsHeaders(ctx.access, req))) res.setHeader(k, v);
  const stat = STATIC[path];
  if (stat && (method === 'GET' || method === 'HEAD')) {
    res.writeHead(200, {
      'Content-Type': stat.type,
      'Cache-Control': 'no-cache',
      'X-Content-Type-Options': 'nosniff',
      ...PAGE_HEADERS,
    });
    res.end(method === 'HEAD' ? undefined : staticFile(stat.file));
    return 200;
  }
  if (path === '/health') {
    if (!authorized(ctx, req)) {
      sendJson(res, 200, { status: 'ok' }); // the model and its steers are for key holders
      return 200;
    }
    const s = ctx.scheduler.stats();
    sendJson(res, 200, {
      status: 'ok',
      model: ctx.modelNames[0],
      steers: ctx.scheduler.steers.names(),
      queued: s.queued,
      active: s.active,
      uptime_s: Math.round((Date.now() - ctx.startedAt) / 1000),
    });
    return 200;
  }
  if (!authorized(ctx, req)) {
    throw new ApiError(
      401,
      'BAD_ARGUMENT',
      'missing or wrong API key',
      'send the header "Authorization: Bearer <key>" with the key the server was started with',
      undefined,
      'invalid_api_key',
    );
  }
  if (path === '/metrics') {
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
    res.end(ctx.metrics.render());
    return 200;
  }
  if (path === '/v1/models') {
    if (method !== 'GET') throw methodNotAllowed(method, path, ['GET']);
    sendJson(res, 200, { object: 'list', data: ctx.modelNames.map((id) => modelCard(ctx, id)) });
    return 200;
  }
  if (path.startsWith('/v1/models/')) {
    if (method !== 'GET') throw methodNotAllowed(method, path, ['GET']);
    const id = decodeName(path.slice('/v1/models/'.length), 'model id');
    if (!ctx.modelNames.includes(id))
      throw new ApiError(
        404,
        'NOT_FOUND',
        `model "${id}" is not served here`,
        `this server serves ${ctx.modelNames.map((n) => `"${n}"`).join(', ')} (GET /v1/models)`,
        'model',
        'model_not_found',
      );
    sendJson(res, 200, modelCard(ctx, id));
    return 200;
  }
  if (path === '/v1/completions' || path === '/v1/chat/completions') {
    if (method !== 'POST') throw methodNotAllowed(method, path, ['POST']);
    const body = await readJson(req, ctx.maxBodyBytes);
    return path === '/v1/completions' ? handleCompletion(ctx, body, res) : handleChat(ctx, body, res);
  }
  if (path === '/v1/steers') {
    if (method === 'GET') {
      sendJson(res, 200, { object: 'list', data: ctx.scheduler.steers.info() });
      return 200;
    }
    if (method !== 'POST') throw methodNotAllowed(method, path, ['GET', 'POST']);
    const body = parseBody(LoadSteerSchema, await readJson(req, ctx.maxBodyBytes));
    if (body.force) {
      throw new ApiError(
        400,
        'BAD_ARGUMENT',
        '"force" is not accepted over HTTP: a steer for another model is never loaded by a client',
        'load it at startup with --steer DIR --force if you mean it',
        'force',
      );
    }
    const dir = resolveSteerPath(ctx.access, body.path);
    let name = '';
    const set = await ctx.scheduler.replaceSteers((cur) => {
      const r = cur.withSteer(ctx.base, dir);
      name = r.name;
      return r.set;
    });
    ctx.lens?.forget(name);
    sendJson(
      res,
      201,
      set.info().find((s) => s.name === name),
    );
    return 201;
  }
  const m = /^\/v1\/steers\/([^/]+)(\/dims)?$/.exec(path);
  if (m) {
    const name = decodeName(m[1]!);
    if (m[2]) {
      if (method !== 'GET') throw methodNotAllowed(method, path, ['GET']);
      if (!ctx.lens) throw lensMissing();
      sendJson(
        res,
        200,
        await ctx.lens.dims(ctx.scheduler.steers, name, new URL(req.url ?? '/', 'http://localhost').searchParams),
      );
      return 200;
    }
    if (method === 'GET') {
      const info = ctx.scheduler.steers.info().find((s) => s.name === name);
      if (!info) throw unknownSteer(ctx, name);
      sendJson(res, 200, info);
      return 200;
    }
    if (method !== 'DELETE') throw methodNotAllowed(method, path, ['GET', 'DELETE']);
    if (!ctx.scheduler.steers.has(name)) throw unknownSteer(ctx, name);
    await ctx.scheduler.replaceSteers((cur) => cur.without(name));
    ctx.lens?.forget(name);
    sendJson(res, 200, { id: name, object: 'steer', deleted: true });
    return 200;
  }
  if (path === '/v1/explain') {
    if (method !== 'POST') throw methodNotAllowed(method, path, ['POST']);
    if (!ctx.lens) throw lensMissing();
    const body = await readJson(req, ctx.maxBodyBytes);
    sendJson(res, 200, await ctx.lens.explain(ctx.scheduler.steers, body));
    return 200;
  }
  throw new ApiError(
    404,
    'NOT_FOUND',
    `no route ${method} ${path}`,
    'see GET /v1/models, POST /v1/completions, POST /v1/chat/completions, GET /v1/steers',
  );
}

/** The model object of OpenAI's GET /v1/models, plus lmsteer's context, steers and embedding fingerprint. */
function modelCard(ctx: RouteContext, id: string) {
  return {
    id,
    object: 'model',
    created: Math.floor(ctx.startedAt / 1000),
    owned_by: 'lmsteer',
    root: ctx.base.id,
    context_length: ctx.limits.context,
    // Which base model this is (steer.ts embeddingFingerprint): `lmsteer eval --endpoint` checks it.
    embedding_fingerprint: ctx.base.fingerprint(),
    steers: ctx.scheduler.steers.names(),
  };
}

function decodeName(s: string, what = 'steer name'): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new ApiError(
      400,
      'BAD_ARGUMENT',
      `the ${what} in the path is not valid percent-encoding`,
      'encode it with encodeURIComponent',
    );
  }
}

function unknownSteer(ctx: RouteContext, name: string): LmSteerError {
  return new ApiError(
    404,
    'NOT_FOUND',
    `no steer named "${name}" is loaded`,
    `loaded steers: ${ctx.scheduler.steers.names().join(', ') || '(none)'}`,
  );
}

function lensMissing(): LmSteerError {
  return new ApiError(
    404,
    'NOT_FOUND',
    'the lens endpoints are not available in this build',
    'src/lens/explain.ts is missing',
  );
}
