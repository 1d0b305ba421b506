/**
 * The panel's pure logic: the server extension's JSON shapes, and what the panel shows of them (durations, state
 * badges, the order of attempts, failures, untrusted outputs). No JupyterLab import, so jest tests it as plain TypeScript.
 */

/** A task that runs the notebook (`GET airflow-notebook/api/runs`). */
export interface ITaskRef {
  dag_id: string;
  task_id: string;
  schedule: string | null;
}

/** One attempt of a task that runs the notebook: one output notebook. */
export interface IAttempt {
  dag_id: string;
  run_id: string;
  task_id: string;
  map_index: number;
  try_number: number;
  state: string | null;
  start_date: string | null;
  end_date: string | null;
  parameters: Record<string, unknown> | null;
  output: string | null;
  viewer_url: string | null;
}

export interface IRuns {
  tasks: ITaskRef[];
  attempts: IAttempt[];
}

/** `GET airflow-notebook/api/status`; `error` and `fix` say what is wrong and what to do when not connected. */
export interface IStatus {
  url: string | null;
  /** The DAGs folder Schedule writes into by default (the server's `dag_folder`). */
  dag_folder?: string | null;
  connected: boolean;
  user?: string | null;
  airflow_version?: string | null;
  error?: string | null;
  fix?: string | null;
}

/** One parameter of the notebook's `parameters` cell, as `airflow-notebook params --json` prints it. */
export interface IDeclaredParameter {
  name: string;
  /** The default as written in the cell. */
  default: string;
  /** The default as a value, when it is a literal (`has_value`). */
  value?: unknown;
  has_value?: boolean;
  type?: string | null;
  help?: string | null;
}

export interface IParams {
  parameters: IDeclaredParameter[];
  has_parameters_cell?: boolean;
  language?: string;
}

/** The failing cell of a debug copy: an index, or an object with what went wrong. */
export interface IFailedCell {
  /** Its index in the debug copy. */
  index: number;
  /** 1-based, among the notebook's own cells, as a person counts them. */
  position?: number | null;
  ename?: string | null;
  evalue?: string | null;
  source?: string | null;
  execution_count?: number | null;
}

/** `POST airflow-notebook/api/debug`. */
export interface IDebugCopy {
  path: string;
  failed_cell: IFailedCell | number | null;
  /** The parameters the run injected (now in the copy's injected cell). */
  parameters?: Record<string, unknown> | null;
}

/** The identity of one attempt, as the debug route and the command `airflow-notebook:debug` take it. */
export interface IAttemptId {
  dag_id: string;
  run_id: string;
  task_id: string;
  map_index: number;
  try_number: number;
}

// -- attempts ---------------------------------------------------------------------------------------------------

/** States in which an attempt may still change: the panel polls while one is shown. */
const ACTIVE_STATES = new Set([
  'queued',
  'scheduled',
  'running',
  'restarting',
  'deferred',
  'up_for_retry',
  'up_for_reschedule'
]);

export function isActive(state: string | null | undefined): boolean {
  return state === null || state === undefined || state === '' || ACTIVE_STATES.has(state);
}

export function attemptKey(a: IAttemptId): string {
  return [a.dag_id, a.run_id, a.task_id, a.map_index, a.try_number].join('\u0000');
}

export function attemptId(a: IAttemptId): IAttemptId {
  return {
    dag_id: a.dag_id,
    run_id: a.run_id,
    task_id: a.task_id,
    map_index: a.map_index,
    try_number: a.try_number
  };
}

function time(iso: string | null | undefined): number {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? Number.POSITIVE_INFINITY : t; // not started yet: the newest
}

/** Newest first: by start (an attempt not started yet first), then the later try of the same task instance. */
export function sortAttempts(attempts: readonly IAttempt[]): IAttempt[] {
  return [...attempts].sort((a, b) => {
    const ta = time(a.start_date);
    const tb = time(b.start_date);
    if (ta !== tb) {
      return ta < tb ? 1 : -1;
    }
    if (a.try_number !== b.try_number) {
      return b.try_number - a.try_number;
    }
    return a.run_id < b.run_id ? 1 : a.run_id > b.run_id ? -1 : 0;
  });
}

/** The attempt before `a` of the same task instance, else of the same task in an earlier run. */
export function previousAttempt(attempts: readonly IAttempt[], a: IAttempt): IAttempt | null {
  const ordered = sortAttempts(attempts.filter(o => o.dag_id === a.dag_id && o.task_id === a.task_id));
  const at = ordered.findIndex(o => attemptKey(o) === attemptKey(a));
  return at >= 0 && at + 1 < ordered.length ? ordered[at + 1] : null;
}

/** The newest successful attempt of the same task other than `a`. */
export function lastSuccess(attempts: readonly IAttempt[], a: IAttempt): IAttempt | null {
  const ordered = sortAttempts(attempts.filter(o => o.dag_id === a.dag_id && o.task_id === a.task_id));
  return ordered.find(o => o.state === 'success' && attemptKey(o) !== attemptKey(a)) ?? null;
}

/** The viewer's compare page for an attempt's viewer link (`.../view?...` → `.../compare?...&against=`). */
export function compareUrl(viewerUrl: string, against: 'previous' | 'last_success'): string {
  const [path, query = ''] = viewerUrl.split('?', 2);
  const params = new URLSearchParams(query);
  params.set('against', against);
  return `${path.replace(/\/view$/, '/compare')}?${params.toString()}`;
}

// -- badges and formatting --------------------------------------------------------------------------------------

export interface IBadge {
  label: string;
  /** CSS class: `anp-state-<state>`. */
  className: string;
  /** Airflow's own colour for the state, so the panel reads like the Grid view. */
  colour: string;
}

const STATE_COLOURS: Record<string, string> = {
  success: '#008000',
  failed: '#d10000',
  running: '#32cd32',
  queued: '#808080',
  scheduled: '#d2b48c',
  up_for_retry: '#daa520',
  up_for_reschedule: '#40e0d0',
  upstream_failed: '#ffa500',
  skipped: '#ff69b4',
  removed: '#d3d3d3',
  restarting: '#ee82ee',
  deferred: '#9370db'
};

export function stateBadge(state: string | null | undefined): IBadge {
  const key = state || 'none';
  return {
    label: key.replace(/_/g, ' '),
    className: `anp-state-${key.replace(/[^a-z_]/gi, '')}`,
    colour: STATE_COLOURS[key] ?? '#a0a0a0'
  };
}

/** A duration as a person reads it: `850 ms`, `12.4 s`, `3 min 04 s`, `2 h 05 min`; `—` before the start. */
export function formatDuration(start: string | null, end: string | null, now: Date = new Date()): string {
  const from = start ? Date.parse(start) : NaN;
  if (Number.isNaN(from)) {
    return '—';
  }
  const to = end ? Date.parse(end) : now.getTime();
  const ms = Math.max(0, (Number.isNaN(to) ? now.getTime() : to) - from);
  if (ms < 1000) {
    return `${Math.round(ms)} ms`;
  }
  if (ms < 60_000) {
    return `${(ms / 1000).toFixed(1)} s`;
  }
  const seconds = Math.floor(ms / 1000);
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min ${String(seconds % 60).padStart(2, '0')} s`;
  }
  const minutes = Math.floor(seconds / 60);
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/** A start time in the browser's time zone, to the second: `2024-01-31 09:05:00`. */
export function formatStart(iso: string | null): string {
  const t = iso ? new Date(iso) : null;
  if (!t || Number.isNaN(t.getTime())) {
    return 'not started';
  }
  const p = (n: number) => String(n).padStart(2, '0');
  return (
    `${t.getFullYear()}-${p(t.getMonth() + 1)}-${p(t.getDate())} ` +
    `${p(t.getHours())}:${p(t.getMinutes())}:${p(t.getSeconds())}`
  );
}

/** Parameters on one line: `region='eu', limit=100` (JSON values, strings quoted as Python shows them). */
export function formatParameters(parameters: Record<string, unknown> | null | undefined): string {
  if (!parameters || Object.keys(parameters).length === 0) {
    return 'no parameters';
  }
  return Object.entries(parameters)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? `'${v}'` : JSON.stringify(v)}`)
    .join(', ');
}

/** What the panel says of the failing cell a debug copy opens at. */
export function describeFailure(failed: IFailedCell | number | null | undefined): string {
  if (failed === null || failed === undefined) {
    return 'No cell failed in this attempt: the copy opens at the top.';
  }
  const cell = typeof failed === 'number' ? { index: failed } : failed;
  const why = [cell.ename, cell.evalue].filter(Boolean).join(': ');
  const position = 'position' in cell && cell.position ? cell.position : cell.index + 1;
  return `Cell ${position} failed${why ? `: ${why}` : '.'}`;
}

export function failedIndex(failed: IFailedCell | number | null | undefined): number | null {
  if (failed === null || failed === undefined) {
    return null;
  }
  return typeof failed === 'number' ? failed : failed.index;
}

/**
 * An output notebook as JupyterLab may show it: data a task wrote, so never trusted. JupyterLab takes a cell's trust
 * from `metadata.trusted` (the Jupyter server sets it from the notebook's signature): a task could write `true` there
 * to have its HTML and JavaScript run in JupyterLab's page. Dropped from every cell, the outputs are sanitized.
 */
export function untrusted(nb: unknown): unknown {
  const cells = (nb as { cells?: unknown })?.cells;
  if (Array.isArray(cells)) {
    for (const cell of cells) {
      const metadata = (cell as { metadata?: Record<string, unknown> })?.metadata;
      if (metadata && typeof metadata === 'object') {
        delete metadata.trusted;
      }
    }
  }
  return nb;
}
