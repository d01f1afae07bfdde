/** `modelInfo`: what a repo offers on the Hub (files, sizes, dtypes), from the model-info API. */
import { WhisperError } from '../errors.js';
import { DEFAULT_REVISION, resolveHubConfig } from './config.js';
import { DTYPES, isExternalDataOf, onnxFilesFor } from './dtypes.js';
import { HubClient } from './http.js';
import { resolveModelId } from './names.js';
import { fetchRepoInfo, SIDE_FILES } from './pull.js';
import type { HubOptions, ModelInfo } from './types.js';
import { assertRevision } from './validate.js';

/** `GET {endpoint}/api/models/{repo}/revision/{revision}?blobs=true`, summarised. Accepts short names too. */
export async function modelInfo(repoOrName: string, options: HubOptions = {}): Promise<ModelInfo> {
  const repo = resolveModelId(repoOrName);
  const revision = options.revision ?? DEFAULT_REVISION;
  assertRevision(revision);
  const config = resolveHubConfig(options);
  if (config.offline) {
    throw new WhisperError('E_HUB_OFFLINE', `offline mode (HF_HUB_OFFLINE) is on: the Hub cannot be asked about ${repo}`);
  }
  const client = new HubClient(config, options.signal);
  try {
    const info = await fetchRepoInfo(client, repo, revision, {
      blobs: true,
      onRetry: (r) => options.onProgress?.({ type: 'retry', path: undefined, ...r }),
    });
    const sizes = new Map(info.siblings.map((s) => [s.path, s.size]));
    const names = info.siblings.map((s) => s.path);
    const side = SIDE_FILES.filter((f) => sizes.has(f));
    const dtypes: ModelInfo['dtypes'] = [];
    for (const dtype of DTYPES) {
      const { encoder, decoder } = onnxFilesFor(dtype);
      if (!sizes.has(encoder) || !sizes.has(decoder)) continue;
      const external = names.filter((n) => isExternalDataOf(encoder, n) || isExternalDataOf(decoder, n)).sort();
      const files = [encoder, decoder, ...external, ...side];
      const known = files.map((f) => sizes.get(f));
      const size = known.every((s) => s !== undefined) ? known.reduce<number>((a, b) => a + (b ?? 0), 0) : undefined;
      dtypes.push({ dtype, files, size });
    }
    return {
      repo,
      revision,
      commit: info.commit,
      files: info.siblings.map((s) => ({ path: s.path, size: s.size, lfsSha256: s.lfsSha256 })).sort((a, b) => a.path.localeCompare(b.path)),
      dtypes,
      gated: info.gated,
      private: info.private,
    };
  } finally {
    await client.close();
  }
}
