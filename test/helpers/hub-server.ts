/**
 * A Hugging Face Hub for tests: real HTTP on 127.0.0.1, serving model folders from disk the way the Hub does —
 * resolve URLs with X-Repo-Commit / ETag / X-Linked-Etag / X-Linked-Size, LFS files (.onnx, .onnx_data) redirected
 * to a blob URL (on a second "CDN" server, or relative on the same host), Range requests, the model-info API,
 * gated repos, and faults to inject (connections cut or stalled mid-body, flipped bytes, error statuses).
 */
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { Readable } from 'node:stream';
import { MODELS } from './paths.js';


export interface ServedRepo {
  /** Folder served as the repo (its `reference/` subfolder is left out). */
  dir?: string;
  /** Extra files (path → bytes), e.g. other dtypes. `.onnx`/`.onnx_data` are LFS files. */
  extra?: Record<string, Buffer>;
  /** Files need `Authorization: Bearer {token}`; the model-info API stays public (as on the Hub). */
  gated?: boolean;
  commit?: string;
}

export interface ServedFile {
  path: string;
  size: number;
  lfs: boolean;
  /** sha256 of the content (computed for every file). */
  sha256: string;
  /** What the Hub sends as etag: sha256 for LFS files, the git blob sha1 otherwise. */
  etag: string;
  source: string | Buffer;
}

export interface RequestRecord {
  server: 'hub' | 'cdn';
  method: string;
  url: string;
  range: string | undefined;
  authorization: string | undefined;
}

export type Fault =
  | { kind: 'cut'; path: string; at: number; times?: number }
  | { kind: 'stall'; path: string; at: number; times?: number }
  | { kind: 'corrupt'; path: string; at: number; times?: number }
  | { kind: 'status'; path: string; status: number; times?: number }
  /** The resolve answer announces a size `by` bytes off the file's real one (a mirror with an inconsistent copy). */
  | { kind: 'announce'; path: string; by: number; times?: number };

export interface HubServerOptions {
  repos: Record<string, ServedRepo>;
  /** The token gated repos accept. */
  token?: string;
  /** Where LFS resolve URLs redirect: the CDN server (default), the same host (relative Location), or no redirect. */
  lfsRedirect?: 'absolute' | 'relative' | 'none';
}

// sha256 of the read-only shared model files, computed once per machine and reused across test files and runs.
const SHA_CACHE = join(tmpdir(), 'whisper-ts-hub-test-sha256.json');
let shaCache: Record<string, string> | undefined;

function sha256OfFile(path: string): string {
  const st = statSync(path);
  const key = `${path}:${st.size}:${st.mtimeMs}`;
  if (shaCache === undefined) {
    try {
      shaCache = JSON.parse(readFileSync(SHA_CACHE, 'utf8')) as Record<string, string>;
    } catch {
      shaCache = {};
    }
  }
  const known = shaCache[key];
  if (known !== undefined) return known;
  const digest = createHash('sha256').update(readFileSync(path)).digest('hex');
  shaCache[key] = digest;
  try {
    writeFileSync(SHA_CACHE, JSON.stringify(shaCache));
  } catch {
    // a cache only
  }
  return digest;
}

function gitBlobSha1(bytes: Buffer): string {
  return createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

function isLfs(path: string): boolean {
  return path.endsWith('.onnx') || /\.onnx_data(_\d+)?$/.test(path);
}

function walk(dir: string, root = dir): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    const rel = relative(root, full).split(sep).join('/');
    if (entry.isDirectory()) {
      if (rel !== 'reference') out.push(...walk(full, root));
    } else out.push(rel);
  }
  return out;
}

export function describeFiles(repo: ServedRepo): ServedFile[] {
  const files: ServedFile[] = [];
  if (repo.dir !== undefined) {
    for (const path of walk(repo.dir)) {
      const full = join(repo.dir, ...path.split('/'));
      const lfs = isLfs(path);
      const size = statSync(full).size;
      const sha256 = sha256OfFile(full);
      files.push({ path, size, lfs, sha256, etag: lfs ? sha256 : gitBlobSha1(readFileSync(full)), source: full });
    }
  }
  for (const [path, bytes] of Object.entries(repo.extra ?? {})) {
    const lfs = isLfs(path);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    files.push({ path, size: bytes.length, lfs, sha256, etag: lfs ? sha256 : gitBlobSha1(bytes), source: bytes });
  }
  return files.sort((a, b) => a.path.localeCompare(b.path));
}

export class HubServer {
  url = '';
  cdnUrl = '';
  readonly requests: RequestRecord[] = [];
  readonly faults: Fault[] = [];
  readonly files = new Map<string, ServedFile[]>();
  readonly commits = new Map<string, string>();
  /** Awaited before the body of a GET is sent (a test holds a download back with it). */
  beforeBody: ((file: ServedFile) => Promise<void>) | undefined;
  private readonly byRepoPath = new Map<string, ServedFile>();
  private readonly bySha = new Map<string, ServedFile>();
  private readonly hub: Server;
  private readonly cdn: Server;

  constructor(private readonly options: HubServerOptions) {
    for (const [repo, served] of Object.entries(options.repos)) {
      const files = describeFiles(served);
      this.files.set(repo, files);
      this.commits.set(repo, served.commit ?? createHash('sha1').update(`commit:${repo}`).digest('hex'));
      for (const f of files) {
        this.byRepoPath.set(`${repo}\n${f.path}`, f);
        if (f.lfs) this.bySha.set(f.sha256, f);
      }
    }
    this.hub = createServer((req, res) => this.handle('hub', req, res));
    this.cdn = createServer((req, res) => this.handle('cdn', req, res));
  }

  async listen(): Promise<void> {
    const listen = (server: Server): Promise<string> =>
      new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
    this.url = await listen(this.hub);
    this.cdnUrl = await listen(this.cdn);
  }

  async close(): Promise<void> {
    for (const server of [this.hub, this.cdn]) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  file(repo: string, path: string): ServedFile {
    const f = this.byRepoPath.get(`${repo}\n${path}`);
    if (f === undefined) throw new Error(`no ${path} in ${repo}`);
    return f;
  }

  addFault(fault: Fault): void {
    this.faults.push({ times: 1, ...fault });
  }

  /** Requests for a file: resolve URLs by path, CDN URLs by the file's sha256. */
  requestsFor(repo: string, path: string, method?: string): RequestRecord[] {
    const f = this.file(repo, path);
    return this.requests.filter(
      (r) =>
        (method === undefined || r.method === method) &&
        (r.url.includes(`/${repo}/resolve/`) && decodeURIComponent(r.url).endsWith(`/${path}`) || (f.lfs && r.url.startsWith(`/cdn/${f.sha256}`))),
    );
  }

  private takeFault(path: string, kinds: Fault['kind'][]): Fault | undefined {
    const fault = this.faults.find((f) => f.path === path && kinds.includes(f.kind) && (f.times ?? 1) > 0);
    if (fault !== undefined) fault.times = (fault.times ?? 1) - 1;
    return fault;
  }

  private handle(server: 'hub' | 'cdn', req: IncomingMessage, res: ServerResponse): void {
    const auth = req.headers.authorization;
    this.requests.push({ server, method: req.method ?? '', url: req.url ?? '', range: req.headers.range, authorization: auth });
    this.route(server, req, res).catch((error: unknown) => {
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end(String(error));
      } else res.destroy();
    });
  }

  private error(res: ServerResponse, status: number, code: string | undefined, message: string): void {
    res.statusCode = status;
    if (code !== undefined) res.setHeader('X-Error-Code', code);
    res.setHeader('X-Error-Message', message);
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ error: message }));
  }

  private async route(server: 'hub' | 'cdn', req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const parts = url.pathname.split('/').slice(1);
    if (parts[0] === 'cdn' && parts.length === 2) {
      const file = this.bySha.get(parts[1] ?? '');
      if (file === undefined) return this.error(res, 404, undefined, 'no such blob');
      return this.serveBytes(req, res, file, {});
    }
    if (server !== 'hub') return this.error(res, 404, undefined, 'not found');
    if (parts[0] === 'api' && parts[1] === 'models' && req.method === 'GET') return this.api(req, res, parts.slice(2), url);
    if (parts.length >= 5 && parts[2] === 'resolve' && (req.method === 'GET' || req.method === 'HEAD')) {
      return this.resolve(req, res, `${parts[0]}/${parts[1]}`, decodeURIComponent(parts[3] ?? ''), parts.slice(4).map(decodeURIComponent).join('/'));
    }
    return this.error(res, 404, undefined, 'not found');
  }

  private checkRevision(res: ServerResponse, repo: string, revision: string): string | undefined {
    const commit = this.commits.get(repo) as string;
    if (revision === 'main' || revision === commit) return commit;
    this.error(res, 404, 'RevisionNotFound', `Invalid rev id: ${revision}`);
    return undefined;
  }

  private api(req: IncomingMessage, res: ServerResponse, parts: string[], url: URL): void {
    const repo = `${parts[0]}/${parts[1]}`;
    const served = this.options.repos[repo];
    if (served === undefined || (parts.length !== 2 && !(parts.length === 4 && parts[2] === 'revision'))) {
      return this.error(res, 404, 'RepoNotFound', 'Repository not found');
    }
    const fault = this.takeFault('@api', ['status']);
    if (fault?.kind === 'status') return this.error(res, fault.status, undefined, 'injected');
    const commit = this.checkRevision(res, repo, parts.length === 4 ? decodeURIComponent(parts[3] ?? '') : 'main');
    if (commit === undefined) return;
    const blobs = url.searchParams.get('blobs') === 'true';
    const siblings = (this.files.get(repo) ?? []).map((f) =>
      blobs
        ? {
            rfilename: f.path,
            size: f.size,
            blobId: f.lfs ? createHash('sha1').update(f.sha256).digest('hex') : f.etag,
            ...(f.lfs ? { lfs: { sha256: f.sha256, size: f.size, pointerSize: 134 } } : {}),
          }
        : { rfilename: f.path },
    );
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ _id: commit.slice(0, 24), id: repo, modelId: repo, sha: commit, private: false, gated: served.gated === true ? 'manual' : false, siblings }));
  }

  private resolve(req: IncomingMessage, res: ServerResponse, repo: string, revision: string, path: string): void {
    const served = this.options.repos[repo];
    if (served === undefined) return this.error(res, 404, 'RepoNotFound', 'Repository not found');
    if (served.gated === true) {
      const auth = req.headers.authorization;
      if (auth === undefined) return this.error(res, 401, 'GatedRepo', `Access to model ${repo} is restricted. You must have access to it and be authenticated to access it.`);
      if (auth !== `Bearer ${this.options.token ?? ''}`) return this.error(res, 403, 'GatedRepo', `Access to model ${repo} is restricted and you are not in the authorized list.`);
    }
    const commit = this.checkRevision(res, repo, revision);
    if (commit === undefined) return;
    const file = this.byRepoPath.get(`${repo}\n${path}`);
    if (file === undefined) return this.error(res, 404, 'EntryNotFound', `${path} does not exist on "${revision}"`);
    const status = req.method === 'GET' ? this.takeFault(path, ['status']) : undefined;
    if (status?.kind === 'status') return this.error(res, status.status, undefined, 'injected failure');
    res.setHeader('X-Repo-Commit', commit);
    const mode = this.options.lfsRedirect ?? 'absolute';
    if (file.lfs && mode !== 'none') {
      res.statusCode = 302;
      res.setHeader('X-Linked-Etag', `"${file.sha256}"`);
      const announce = this.takeFault(path, ['announce']);
      res.setHeader('X-Linked-Size', String(file.size + (announce?.kind === 'announce' ? announce.by : 0)));
      res.setHeader('ETag', `"${file.sha256}"`);
      res.setHeader('Location', `${mode === 'absolute' ? this.cdnUrl : ''}/cdn/${file.sha256}?X-Amz-Signature=abc&Expires=1`);
      res.setHeader('Content-Length', '0');
      res.end();
      return;
    }
    this.serveBytes(req, res, file, { etag: file.etag });
  }

  private async serveBytes(req: IncomingMessage, res: ServerResponse, file: ServedFile, headers: { etag?: string }): Promise<void> {
    if (headers.etag !== undefined) res.setHeader('ETag', `"${headers.etag}"`);
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Content-Type', 'application/octet-stream');
    let start = 0;
    let end = file.size - 1;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range !== null) {
      start = Number(range[1]);
      if (range[2] !== '' && range[2] !== undefined) end = Math.min(end, Number(range[2]));
      if (start >= file.size) {
        res.statusCode = 416;
        res.setHeader('Content-Range', `bytes */${file.size}`);
        res.end();
        return;
      }
      res.statusCode = 206;
      res.setHeader('Content-Range', `bytes ${start}-${end}/${file.size}`);
    }
    res.setHeader('Content-Length', String(end - start + 1));
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const status = this.takeFault(file.path, ['status']);
    if (status?.kind === 'status') {
      res.removeHeader('Content-Range');
      res.removeHeader('Content-Length');
      return this.error(res, status.status, undefined, 'injected failure');
    }
    if (this.beforeBody !== undefined) await this.beforeBody(file);
    const fault = this.takeFault(file.path, ['cut', 'stall', 'corrupt']);
    const stream =
      typeof file.source === 'string'
        ? createReadStream(file.source, { start, end, highWaterMark: 256 * 1024 })
        : Readable.from([file.source.subarray(start, end + 1)]);
    const closed = new Promise<void>((resolve) => res.once('close', () => resolve()));
    let pos = start;
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        let buf = chunk;
        if (fault !== undefined && fault.kind !== 'status' && fault.kind !== 'announce' && pos + buf.length > fault.at && fault.at >= pos) {
          if (fault.kind === 'corrupt') {
            buf = Buffer.from(buf);
            buf[fault.at - pos] = (buf[fault.at - pos] ?? 0) ^ 0xff;
          } else {
            const head = buf.subarray(0, fault.at - pos);
            if (head.length > 0) await new Promise<void>((resolve) => res.write(head, () => resolve()));
            if (fault.kind === 'cut') res.socket?.destroy();
            // 'stall': keep the connection open, send nothing more, until the client gives up.
            await closed;
            return;
          }
        }
        if (!res.write(buf)) await Promise.race([new Promise((resolve) => res.once('drain', resolve)), closed]);
        if (res.destroyed) return;
        pos += buf.length;
      }
      res.end();
    } finally {
      if ('destroy' in stream) stream.destroy();
    }
  }
}

export async function startHubServer(options: HubServerOptions): Promise<HubServer> {
  const server = new HubServer(options);
  await server.listen();
  return server;
}

/** The two shared models as the Hub's onnx-community repos, plus small fake files for other dtypes. */
export function standardRepos(): Record<string, ServedRepo> {
  const fake = (label: string): Buffer => Buffer.from(`not a real onnx graph: ${label}\n`.repeat(64));
  return {
    'onnx-community/whisper-base': {
      dir: join(MODELS, 'whisper-base'),
      extra: {
        'README.md': Buffer.from('# whisper-base\n'),
        '.gitattributes': Buffer.from('*.onnx filter=lfs diff=lfs merge=lfs -text\n'),
        'onnx/encoder_model.onnx': fake('encoder fp32'),
        'onnx/decoder_model_merged.onnx': fake('decoder fp32'),
        'onnx/encoder_model_fp16.onnx': fake('encoder fp16'),
        'onnx/decoder_model_merged_fp16.onnx': fake('decoder fp16'),
        'onnx/encoder_model_q4.onnx': fake('encoder q4'),
        'onnx/decoder_model_merged_q4.onnx': fake('decoder q4'),
        'onnx/decoder_model_merged_q4.onnx_data': fake('decoder q4 external data'),
        'onnx/decoder_model_quantized.onnx': fake('unmerged decoder q8'),
      },
    },
    'onnx-community/whisper-tiny.en': {
      dir: join(MODELS, 'whisper-tiny.en'),
      extra: { 'README.md': Buffer.from('# whisper-tiny.en\n') },
    },
  };
}
