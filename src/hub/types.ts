/** Options, progress events and results of the hub client. */
import type { Dtype } from './dtypes.js';

export interface HubTimeouts {
  /** TCP/TLS connection set-up. Default 10 s. */
  connectMs?: number;
  /** Waiting for the response headers of a metadata request (HEAD, model info). Default `HF_HUB_ETAG_TIMEOUT` or 10 s. */
  metadataMs?: number;
  /** A download that receives no byte for this long is cut and resumed. Default `HF_HUB_DOWNLOAD_TIMEOUT` or 10 s. */
  stallMs?: number;
}

export interface HubRetry {
  /** Retries after the first try, for 5xx/429 answers and dropped or stalled connections. Default 5. */
  retries?: number;
  /** First backoff delay, doubled each time. Default 1000 ms. */
  baseDelayMs?: number;
  /** Longest backoff delay. Default 8000 ms. */
  maxDelayMs?: number;
}

/** Where a pull stands. `bytes` and `totalBytes` count only what this pull has to download. */
export type PullProgressEvent =
  | {
      type: 'resolved';
      repo: string;
      revision: string;
      commit: string;
      dtype: Dtype;
      /** Set when the encoder or the decoder is pulled in another variant than `dtype`. */
      parts?: { encoder: Dtype; decoder: Dtype };
      files: readonly { path: string; size: number | undefined; cached: boolean }[];
      /** Bytes still to fetch (0: everything is in the cache). */
      downloadBytes: number;
      cacheDir: string;
    }
  | { type: 'file-start'; path: string; size: number | undefined; resumeFrom: number }
  /** Another process (or pull) is downloading this file into the same cache; this pull waits for it. */
  | { type: 'waiting'; path: string }
  | { type: 'progress'; path: string; fileBytes: number; fileSize: number | undefined; bytes: number; totalBytes: number }
  | { type: 'file-done'; path: string; size: number; downloaded: boolean }
  | { type: 'retry'; path: string | undefined; attempt: number; retries: number; delayMs: number; reason: string }
  /** The model came from the cache without asking the server: offline mode, or the server could not be reached. */
  | { type: 'cache-hit'; repo: string; commit: string; path: string; reason: 'offline' | 'network-error'; detail?: string }
  | { type: 'done'; repo: string; commit: string; path: string; downloadedBytes: number };

export interface HubOptions {
  /** Hub or mirror base URL. Default `HF_ENDPOINT`, else https://huggingface.co. */
  endpoint?: string | undefined;
  /** The huggingface_hub cache. Default `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`. */
  cacheDir?: string | undefined;
  /** Bearer token; `false` sends none. Default `HF_TOKEN`, else the token file huggingface_hub's login writes. */
  token?: string | false | undefined;
  /** Use the cache only, never the network. Default `HF_HUB_OFFLINE`. */
  offline?: boolean | undefined;
  /** Branch, tag or commit. Default `main`. */
  revision?: string | undefined;
  /** Weight variant to fetch. Default q8. */
  dtype?: Dtype | undefined;
  /** The encoder's variant, when it differs from `dtype` (as `loadModel`'s `encoderDtype`). */
  encoderDtype?: Dtype | undefined;
  /** The decoder's variant, when it differs from `dtype` (as `loadModel`'s `decoderDtype`). */
  decoderDtype?: Dtype | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((event: PullProgressEvent) => void) | undefined;
  timeouts?: HubTimeouts | undefined;
  retry?: HubRetry | undefined;
  /**
   * Proxy URL for every request; `false` for none. Default: `HTTPS_PROXY` / `HTTP_PROXY` with `NO_PROXY` (upper or
   * lower case).
   */
  proxy?: string | false | undefined;
}

export type PullOptions = HubOptions;

export interface CachedRevision {
  commit: string;
  /** Branches and tags (`refs/…` files) that point at this commit. */
  refs: string[];
  path: string;
  /** Repo paths present in the snapshot. */
  files: string[];
  dtypes: Dtype[];
  /** Bytes of the distinct blobs the snapshot links to. */
  sizeOnDisk: number;
}

export interface CachedModel {
  repo: string;
  /** The `models--org--name` folder. */
  path: string;
  revisions: CachedRevision[];
  /** Union of the revisions' dtypes. */
  dtypes: Dtype[];
  /** Bytes of everything under `blobs/`, partial downloads included. */
  sizeOnDisk: number;
  /** Bytes of `*.incomplete` partial downloads (resumable). */
  incompleteBytes: number;
}

export interface RemovedModel {
  repo: string;
  path: string;
  freedBytes: number;
  /** Set when the repo's cache folder was a symbolic link: the link was removed, the folder it names was left. */
  linkTarget?: string;
}

export interface HubFileInfo {
  path: string;
  size: number | undefined;
  /** For LFS files: the sha256 of the content. */
  lfsSha256: string | undefined;
}

export interface ModelInfo {
  repo: string;
  revision: string;
  commit: string;
  files: HubFileInfo[];
  /** Dtypes with both ONNX graphs in the repo, the files a pull of each fetches, and their total size. */
  dtypes: { dtype: Dtype; files: string[]; size: number | undefined }[];
  gated: boolean;
  private: boolean;
}
