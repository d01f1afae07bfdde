import { Option, type Command } from 'commander';
import { DEFAULTS, OPTION_SPECS, type AllOptions } from '../index.js';

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

/** Adds one flag per option of the shared table (OPTION_SPECS), with the default from DEFAULTS in the help. */
export function addOptionFlags(cmd: Command, scope: 'load' | 'call' | 'all'): Command {
  for (const key of Object.keys(OPTION_SPECS) as (keyof AllOptions)[]) {
    const spec = OPTION_SPECS[key];
    if (scope !== 'all' && spec.scope !== scope) continue;
    const value = spec.kind === 'boolean' ? ' [bool]' : spec.kind.endsWith('s') ? ' <list>' : ' <value>';
    const d = DEFAULTS[key];
    const shown = Array.isArray(d) ? d.join(',') : d === null ? 'none' : String(d);
    const opt = new TableOption(`--${spec.flag}${value}`, `${spec.description} (default: ${shown})`, key);
    if (spec.choices) opt.choices([...spec.choices]);
    cmd.addOption(opt);
  }
  return cmd;
}

/** The options the user gave on the command line (commander camel-cases the flags into the table's keys). */
export function givenOptions(opts: Record<string, unknown>, scope: 'load' | 'call'): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(OPTION_SPECS) as (keyof AllOptions)[]) {
    if (OPTION_SPECS[key].scope !== scope) continue;
    const v = opts[key];
    if (v !== undefined) out[key] = v === true && OPTION_SPECS[key].kind === 'boolean' ? true : v;
  }
  return out;
}
