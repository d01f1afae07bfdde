import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, label?: string): void;
  stop(): void;
}

/** A bar on a terminal, plain lines (at most every 10 %) otherwise, nothing when quiet. */
export function createProgress(total: number, unit: string, stream: NodeJS.WriteStream, quiet: boolean): Progress {
  if (quiet) return { update() {}, stop() {} };
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream,
        format: `{bar} {percentage}% | {value}/{total} ${unit} | ETA {eta_formatted} | {label}`,
        hideCursor: true,
        clearOnComplete: true,
        formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? v.toFixed(1) : String(v)),
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { label: '' });
    return {
      update: (done, label = '') => bar.update(Math.min(done, total), { label }),
      stop: () => bar.stop(),
    };
  }
  let lastDecile = -1;
  return {
    update(done, label = '') {
      const decile = total > 0 ? Math.floor((10 * done) / total) : 10;
      if (decile > lastDecile) {
        lastDecile = decile;
        stream.write(`progress ${done.toFixed(1)}/${total.toFixed(1)} ${unit} ${Math.min(100, decile * 10)}% ${label}\n`);
      }
    },
    stop() {},
  };
}
