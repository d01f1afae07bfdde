import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, label?: string): void;
  stop(): void;
}

/** A bar on a terminal, plain lines (at most every 10 %) otherwise, nothing when quiet. */
export function createProgress(total: number, unit: string, stream: NodeJS.WriteStream, quiet: boolean): Progress {
  if (quiet) return { update() {}, stop() {} };
  // rounded down like the percentage (no "11.0/11.0 s 90%"): files show how many are finished, seconds one decimal
  const show = (v: number): string => (unit === 'files' ? String(Math.floor(v + 1e-9)) : (Math.floor(v * 10 + 1e-6) / 10).toFixed(1));
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream,
        format: `{bar} {percentage}% | {value}/{total} ${unit} | ETA {eta_formatted} | {label}`,
        hideCursor: true,
        clearOnComplete: true,
        formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? show(v) : String(v)),
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
        const percent = total > 0 ? Math.min(100, Math.floor((100 * done) / total)) : 100;
        stream.write(`progress ${show(done)}/${show(total)} ${unit} ${percent}% ${label}\n`);
      }
    },
    stop() {},
  };
}
