/**
 * The side panel: the Airflow tasks that run the open notebook and their attempts, newest first, with the actions
 * on each (open the output, debug, compare). It follows the current notebook and polls while a run is going.
 */
import { Widget } from '@lumino/widgets';

import { ApiError, getRuns, getStatus } from './api';
import {
  IAttempt,
  IAttemptId,
  IRuns,
  IStatus,
  attemptId,
  compareUrl,
  formatDuration,
  formatParameters,
  formatStart,
  isActive,
  lastSuccess,
  previousAttempt,
  sortAttempts,
  stateBadge
} from './model';

/** Seconds between two polls while an attempt shown is still going (or a triggered run is followed). */
const ACTIVE_POLL_MS = 3000;
/** Seconds between two refreshes otherwise, to catch scheduled runs. */
const IDLE_POLL_MS = 30000;

export interface IPanelActions {
  openOutput(attempt: IAttempt): void;
  debug(attempt: IAttemptId): void;
  runNow(): void;
  schedule(): void;
}

export class RunsPanel extends Widget {
  constructor(private readonly actions: IPanelActions) {
    super();
    this.id = 'airflow-notebook-runs';
    this.addClass('anp-panel');
    this.title.caption = 'Airflow runs of this notebook';
    this.node.tabIndex = 0;
  }

  /** The notebook the panel follows (path relative to the Jupyter root), or null when none is open. */
  get path(): string | null {
    return this._path;
  }

  set path(path: string | null) {
    if (path === this._path) {
      return;
    }
    this._path = path;
    this._runs = null;
    this._runsError = null;
    this._notice = null;
    void this.refresh();
  }

  /** Follow a run just triggered until it ends, with a line saying so. */
  follow(dagId: string, runId: string): void {
    this._followed.set(`${dagId}\u0000${runId}`, { dagId, runId });
    this.notice(`Triggered ${dagId}, run ${runId}: following it here until it ends.`, 'info');
    void this.refresh();
  }

  /** A line above the attempts (the debug copy's failing cell, a trigger, an error of an action). */
  notice(text: string, kind: 'info' | 'error' = 'info', fix: string | null = null): void {
    this._notice = { text, kind, fix };
    this.render();
  }

  dispose(): void {
    window.clearTimeout(this._timer);
    super.dispose();
  }

  async refresh(): Promise<void> {
    window.clearTimeout(this._timer);
    const path = this._path;
    const generation = ++this._generation;
    try {
      this._status = await getStatus();
      this._statusError = null;
    } catch (error) {
      this._status = null;
      this._statusError = asApiError(error);
    }
    if (path && this._status?.connected) {
      try {
        const runs = await getRuns(path);
        if (generation !== this._generation) {
          return; // a newer refresh (another notebook) started meanwhile
        }
        this._runs = { tasks: runs.tasks, attempts: sortAttempts(runs.attempts) };
        this._runsError = null;
      } catch (error) {
        this._runsError = asApiError(error);
      }
    }
    if (generation !== this._generation) {
      return;
    }
    this.settleFollowed();
    this.render();
    this._timer = window.setTimeout(() => {
      if (this.isVisible) {
        void this.refresh();
      } else {
        this._stale = true; // no polling of Airflow while the panel is hidden: once shown again
      }
    }, this.busy() ? ACTIVE_POLL_MS : IDLE_POLL_MS);
  }

  protected onAfterShow(): void {
    if (this._stale) {
      this._stale = false;
      void this.refresh();
    }
  }

  /** Whether anything shown may still change: an attempt going, or a followed run not seen ended. */
  private busy(): boolean {
    return this._followed.size > 0 || (this._runs?.attempts ?? []).some(a => isActive(a.state));
  }

  private settleFollowed(): void {
    for (const [key, run] of this._followed) {
      const mine = (this._runs?.attempts ?? []).filter(a => a.dag_id === run.dagId && a.run_id === run.runId);
      if (mine.length > 0 && mine.every(a => !isActive(a.state))) {
        this._followed.delete(key);
        const failed = mine.some(a => a.state !== 'success');
        this.notice(`Run ${run.runId} of ${run.dagId} ended: ${failed ? 'failed' : 'success'}.`, failed ? 'error' : 'info');
      }
    }
  }

  protected onAfterAttach(): void {
    void this.refresh();
  }

  private render(): void {
    const node = this.node;
    node.replaceChildren();
    const header = el('div', 'anp-header');
    header.append(el('span', 'anp-title', 'Airflow runs'));
    const refresh = button('Refresh', 'anp-refresh', () => void this.refresh());
    header.append(refresh);
    node.append(header);
    node.append(this.renderStatus());
    if (!this._path) {
      node.append(el('p', 'anp-empty', 'Open a notebook to see its Airflow runs.'));
      return;
    }
    node.append(el('div', 'anp-notebook', this._path));
    const actions = el('div', 'anp-actions');
    actions.append(button('Run now…', 'anp-run-now', () => this.actions.runNow()));
    actions.append(button('Schedule…', 'anp-schedule', () => this.actions.schedule()));
    node.append(actions);
    if (this._notice) {
      const box = el('div', `anp-notice anp-notice-${this._notice.kind}`, this._notice.text);
      if (this._notice.fix) {
        box.append(el('div', 'anp-fix', this._notice.fix));
      }
      node.append(box);
    }
    if (!this._status?.connected) {
      return;
    }
    if (this._runsError) {
      node.append(errorBox(this._runsError));
      return;
    }
    if (!this._runs) {
      node.append(el('p', 'anp-empty', 'Loading…'));
      return;
    }
    node.append(this.renderTasks(this._runs));
    node.append(this.renderAttempts(this._runs));
  }

  private renderStatus(): HTMLElement {
    if (this._statusError) {
      return errorBox(this._statusError);
    }
    const s = this._status;
    if (!s) {
      return el('div', 'anp-status', 'Connecting to Airflow…');
    }
    if (!s.connected) {
      const box = el('div', 'anp-error anp-status-error');
      box.append(el('div', 'anp-error-message', s.error || `Not connected to Airflow at ${s.url || '(no URL set)'}.`));
      box.append(el('div', 'anp-fix', s.fix || fixFor(s)));
      return box;
    }
    const version = s.airflow_version ? ` (Airflow ${s.airflow_version})` : '';
    return el('div', 'anp-status anp-connected', `Connected to ${s.url} as ${s.user ?? 'token'}${version}`);
  }

  private renderTasks(runs: IRuns): HTMLElement {
    const section = el('section', 'anp-tasks');
    section.append(el('h3', '', 'Tasks running this notebook'));
    if (runs.tasks.length === 0) {
      section.append(
        el('p', 'anp-empty', 'No Airflow task runs this notebook yet (or none you may see). Schedule… writes one.')
      );
      return section;
    }
    const table = el('table', 'anp-task-table');
    const head = el('tr');
    ['DAG', 'task', 'schedule'].forEach(h => head.append(el('th', '', h)));
    table.append(head);
    for (const t of runs.tasks) {
      const row = el('tr', 'anp-task');
      row.append(el('td', '', t.dag_id), el('td', '', t.task_id), el('td', '', t.schedule ?? 'none (manual)'));
      table.append(row);
    }
    section.append(table);
    return section;
  }

  private renderAttempts(runs: IRuns): HTMLElement {
    const section = el('section', 'anp-attempts');
    section.append(el('h3', '', 'Attempts, newest first'));
    if (runs.attempts.length === 0) {
      section.append(el('p', 'anp-empty', 'No attempt yet.'));
    }
    const list = el('ul', 'anp-attempt-list');
    for (const a of runs.attempts) {
      list.append(this.renderAttempt(a, runs.attempts));
    }
    section.append(list);
    return section;
  }

  private renderAttempt(a: IAttempt, all: IAttempt[]): HTMLElement {
    const item = el('li', 'anp-attempt');
    item.dataset.state = a.state ?? 'none';
    item.dataset.runId = a.run_id;
    const badge = stateBadge(a.state);
    const top = el('div', 'anp-attempt-top');
    const chip = el('span', `anp-badge ${badge.className}`, badge.label);
    chip.style.backgroundColor = badge.colour;
    top.append(chip, el('span', 'anp-attempt-name', `${a.dag_id} › ${a.task_id}`));
    top.append(el('span', 'anp-try', `try ${a.try_number}${a.map_index >= 0 ? ` · [${a.map_index}]` : ''}`));
    item.append(top);
    item.append(
      el('div', 'anp-attempt-time', `${formatStart(a.start_date)} · ${formatDuration(a.start_date, a.end_date)}`)
    );
    item.append(el('div', 'anp-attempt-run', a.run_id));
    item.append(el('div', 'anp-params', formatParameters(a.parameters)));
    const buttons = el('div', 'anp-attempt-actions');
    if (a.output || a.viewer_url) {
      buttons.append(button('Open output', 'anp-open', () => this.actions.openOutput(a)));
    }
    if (a.output && (a.state === 'failed' || a.state === 'up_for_retry' || a.state === 'success')) {
      buttons.append(button('Debug', 'anp-debug', () => this.actions.debug(attemptId(a))));
    }
    if (a.viewer_url) {
      const viewer = a.viewer_url;
      if (previousAttempt(all, a)) {
        buttons.append(button('Compare: previous', 'anp-compare-previous', () => openTab(compareUrl(viewer, 'previous'))));
      }
      if (lastSuccess(all, a)) {
        buttons.append(
          button('Compare: last success', 'anp-compare-success', () => openTab(compareUrl(viewer, 'last_success')))
        );
      }
    }
    item.append(buttons);
    item.title = 'Click to open the output notebook, read-only';
    item.addEventListener('click', event => {
      if (!(event.target as HTMLElement).closest('button')) {
        this.actions.openOutput(a);
      }
    });
    return item;
  }

  private _path: string | null = null;
  private _status: IStatus | null = null;
  private _statusError: ApiError | null = null;
  private _runs: IRuns | null = null;
  private _runsError: ApiError | null = null;
  private _notice: { text: string; kind: 'info' | 'error'; fix: string | null } | null = null;
  private _followed = new Map<string, { dagId: string; runId: string }>();
  private _timer = 0;
  private _stale = false;
  private _generation = 0;
}

export function asApiError(error: unknown): ApiError {
  return error instanceof ApiError ? error : new ApiError(String(error), 0);
}

function fixFor(s: IStatus): string {
  if (!s.url) {
    return 'Set AIRFLOW_NOTEBOOK_API_URL (or c.AirflowNotebook.api_url) for the Jupyter server, then restart it.';
  }
  return (
    'Check AIRFLOW_NOTEBOOK_API_URL, and AIRFLOW_NOTEBOOK_API_USERNAME and AIRFLOW_NOTEBOOK_API_PASSWORD ' +
    '(or AIRFLOW_NOTEBOOK_API_TOKEN) in the Jupyter server’s environment, then restart it.'
  );
}

function errorBox(error: ApiError): HTMLElement {
  const box = el('div', 'anp-error');
  box.append(el('div', 'anp-error-message', error.message));
  if (error.fix) {
    box.append(el('div', 'anp-fix', error.fix));
  }
  return box;
}

export function openTab(url: string): void {
  window.open(url, '_blank', 'noopener');
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

export function button(label: string, className: string, onClick: () => void): HTMLButtonElement {
  const b = el('button', `jp-Button anp-button ${className}`, label);
  b.type = 'button';
  b.addEventListener('click', event => {
    event.stopPropagation();
    onClick();
  });
  return b;
}
