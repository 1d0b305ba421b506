/**
 * The Run now and Schedule forms' model: one typed field per parameter of the notebook's `parameters` cell, and the
 * typed values a filled-in form gives. Pure logic, tested with jest.
 */
import { IDeclaredParameter } from './model';

export type FieldKind = 'integer' | 'number' | 'boolean' | 'string' | 'json';

/** One field of the Run now / Schedule form. */
export interface IField {
  name: string;
  kind: FieldKind;
  /** The text the input starts with (for `boolean`: `true` or `false`). */
  initial: string;
  /** The type as the notebook declares it, for the label. */
  typeLabel: string;
  help: string;
  /** The default is an expression, not a literal: an empty field keeps it. */
  expression: boolean;
}

const KINDS: Record<string, FieldKind> = {
  int: 'integer',
  integer: 'integer',
  float: 'number',
  numeric: 'number',
  double: 'number',
  bool: 'boolean',
  logical: 'boolean',
  str: 'string',
  character: 'string',
  list: 'json',
  dict: 'json',
  tuple: 'json'
};

function kindOf(p: IDeclaredParameter): FieldKind {
  const declared = (p.type ?? '').trim().toLowerCase();
  if (KINDS[declared]) {
    return KINDS[declared];
  }
  if (p.has_value) {
    const v = p.value;
    if (typeof v === 'boolean') {
      return 'boolean';
    }
    if (typeof v === 'number') {
      return Number.isInteger(v) ? 'integer' : 'number';
    }
    if (typeof v === 'string') {
      return 'string';
    }
  }
  return 'json';
}

/** The form's fields from the notebook's parameters cell, in the cell's order. */
export function buildParamsForm(params: readonly IDeclaredParameter[]): IField[] {
  return params.map(p => {
    const kind = kindOf(p);
    let initial = '';
    if (p.has_value) {
      initial = kind === 'string' && typeof p.value === 'string' ? p.value : JSON.stringify(p.value);
    }
    return {
      name: p.name,
      kind,
      initial,
      typeLabel: p.type || kind,
      help: p.help ?? '',
      expression: !p.has_value
    };
  });
}

export interface IFormResult {
  values: Record<string, unknown>;
  /** Per field, what is wrong with its text. */
  errors: Record<string, string>;
}

/** The parameters a filled-in form gives, typed; a field left as its default or empty (expression) is left out. */
export function readParamsForm(fields: readonly IField[], texts: Record<string, string>): IFormResult {
  const values: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const f of fields) {
    const text = (texts[f.name] ?? f.initial).trim();
    if (text === f.initial.trim() || (f.expression && text === '')) {
      continue; // the notebook's own default
    }
    switch (f.kind) {
      case 'integer':
        if (/^-?\d+$/.test(text)) {
          values[f.name] = Number(text);
        } else {
          errors[f.name] = `${f.name} is an integer: "${text}" is not.`;
        }
        break;
      case 'number':
        if (text !== '' && !Number.isNaN(Number(text))) {
          values[f.name] = Number(text);
        } else {
          errors[f.name] = `${f.name} is a number: "${text}" is not.`;
        }
        break;
      case 'boolean':
        values[f.name] = text === 'true';
        break;
      case 'string':
        values[f.name] = texts[f.name] ?? f.initial;
        break;
      default:
        try {
          values[f.name] = JSON.parse(text);
        } catch {
          errors[f.name] = `${f.name} takes a JSON value (a list as [1, 2], a mapping as {"a": 1}, a string in quotes).`;
        }
    }
  }
  return { values, errors };
}

/** Whether a DAG id is one Airflow accepts (letters, digits, `_`, `-`, `.`; at most 250 characters). */
export function validDagId(dagId: string): boolean {
  return /^[A-Za-z0-9_.-]{1,250}$/.test(dagId);
}

/** A DAG id suggested from a notebook's path: `reports/Daily Sales.ipynb` → `daily_sales`. */
export function dagIdFor(path: string): string {
  const base = path.split('/').pop() ?? path;
  const stem = base.replace(/\.[^.]*$/, '');
  return (
    stem
      .toLowerCase()
      .replace(/[^a-z0-9_.-]+/g, '_')
      .replace(/^_+|_+$/g, '') || 'notebook'
  );
}
