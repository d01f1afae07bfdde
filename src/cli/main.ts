import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { EXIT } from './exit-codes.js';
import { transcribeCommand, type CliIo } from './transcribe.js';
import { vadCommand } from './vad.js';
import { modelsCommand } from './models.js';
import { benchCommand } from './bench.js';
import { serveCommand } from './serve.js';
import { liveCommand } from './live.js';
import { describeError } from './exit-codes.js';

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** The whisper-ts command line. Returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const controller = new AbortController();
  const onSigint = (): void => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSigint);
  let exitCode: number = EXIT.ok;
  const io: CliIo = {
    stdout: process.stdout,
    stderr: process.stderr,
    signal: controller.signal,
    setExitCode: (c) => {
      exitCode = c;
    },
  };
  const program = new Command('whisper-ts')
    .description('Whisper speech recognition on ONNX Runtime')
    .version(version())
    .exitOverride()
    .showHelpAfterError();
  program.addCommand(transcribeCommand(io));
  program.addCommand(vadCommand());
  program.addCommand(modelsCommand(io));
  program.addCommand(benchCommand(io));
  program.addCommand(serveCommand(io));
  program.addCommand(liveCommand(io));
  // every (sub)command reports a bad command line through the catch below (exit 2), never by exiting on its own
  const override = (cmd: Command): void => {
    cmd.exitOverride().showHelpAfterError();
    cmd.commands.forEach(override);
  };
  override(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const e = describeError(err);
    process.stderr.write(e.message + '\n');
    return e.code;
  } finally {
    process.off('SIGINT', onSigint);
  }
  return exitCode;
}
