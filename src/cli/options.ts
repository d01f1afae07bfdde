import { Option, type Command } from 'commander';
import { DEFAULTS, OPTION_SPECS, type AllOptions, type OptionSpec } from '../index.js';

/**
 * An option whose value lands under the table's key. Commander would treat a flag starting with `--no-` (openai's
 * `--no-speech-threshold`) as the negation of another flag; table flags are never negations.
 */
class TableOption extends Option {
  constructor(
    flags: string,
    description: string,
    private readonly key: string,
  ) {
    super(flags, description);
    this.negate = false;
  }
  override attributeName(): string {
    return this.key;
  }
}

function tableOption(spec: OptionSpec, key: string, d: unknown): TableOption {
  const value = spec.kind === 'boolean' ? ' [bool]' : spec.kind.endsWith('s') ? ' <list>' : ' <value>';
  const shown = spec.shownDefault ?? (Array.isArray(d) ? d.join(',') : d === null ? 'none' : String(d));
  const opt = new TableOption(`--${spec.flag}${value}`, `${spec.description} (default: ${shown})`, key);
  if (spec.choices) opt.choices([...spec.choices]);
  return opt;
}

/**
 * Adds one flag per option of the shared table (OPTION_SPECS), with the default from DEFAULTS in the help; an
 * option of kind `object` gets one flag per field (its values land under `key.field`).
 */
export function addOptionFlags(cmd: Command, scope: 'load' | 'call' | 'all'): Command {
  for (const key of Object.keys(OPTION_SPECS) as (keyof AllOptions)[]) {
    const spec = OPTION_SPECS[key];
    if (scope !== 'all' && spec.scope !== scope) continue;
    if (spec.kind === 'object') {
      for (const [field, fieldSpec] of Object.entries(spec.fields ?? {})) {
        cmd.addOption(tableOption(fieldSpec, `${key}.${field}`, undefined));
      }
      continue;
    }
    cmd.addOption(tableOption(spec, key, DEFAULTS[key]));
  }
  return cmd;
}

/** The options the user gave on the command line (commander camel-cases the flags into the table's keys). */
export function givenOptions(opts: Record<string, unknown>, scope: 'load' | 'call'): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(OPTION_SPECS) as (keyof AllOptions)[]) {
    if (OPTION_SPECS[key].scope !== scope) continue;
    if (OPTION_SPECS[key].kind === 'object') {
      const fields: Record<string, unknown> = {};
      for (const field of Object.keys(OPTION_SPECS[key].fields ?? {})) {
        const v = opts[`${key}.${field}`];
        if (v !== undefined) fields[field] = v;
      }
      if (Object.keys(fields).length > 0) out[key] = fields;
      continue;
    }
    const v = opts[key];
    if (v !== undefined) out[key] = v === true && OPTION_SPECS[key].kind === 'boolean' ? true : v;
  }
  return out;
}

/** An input argument as a path: `-` is standard input (as most audio tools read it). */
export function inputPath(arg: string): string {
  return arg === '-' && process.platform !== 'win32' ? '/dev/stdin' : arg;
}
