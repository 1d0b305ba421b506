import {
  IAttempt,
  compareUrl,
  describeFailure,
  failedIndex,
  formatDuration,
  formatParameters,
  formatStart,
  isActive,
  lastSuccess,
  previousAttempt,
  sortAttempts,
  stateBadge,
  untrusted
} from '../model';
import { buildParamsForm, dagIdFor, readParamsForm, validDagId } from '../params';

function attempt(over: Partial<IAttempt>): IAttempt {
  return {
    dag_id: 'report',
    run_id: 'manual__1',
    task_id: 'nb',
    map_index: -1,
    try_number: 1,
    state: 'success',
    start_date: '2024-01-01T10:00:00Z',
    end_date: '2024-01-01T10:00:05Z',
    parameters: {},
    output: '/out/1.ipynb',
    viewer_url: 'http://af/notebook/dags/report/view?run_id=manual__1&task_id=nb&map_index=-1&try_number=1',
    ...over
  };
}

describe('formatDuration', () => {
  it('reads as a person says it', () => {
    const s = '2024-01-01T10:00:00Z';
    expect(formatDuration(s, '2024-01-01T10:00:00.850Z')).toBe('850 ms');
    expect(formatDuration(s, '2024-01-01T10:00:12.440Z')).toBe('12.4 s');
    expect(formatDuration(s, '2024-01-01T10:03:04Z')).toBe('3 min 04 s');
    expect(formatDuration(s, '2024-01-01T12:05:59Z')).toBe('2 h 05 min');
  });

  it('counts up to now while running, and is a dash before the start', () => {
    const now = new Date('2024-01-01T10:00:30Z');
    expect(formatDuration('2024-01-01T10:00:00Z', null, now)).toBe('30.0 s');
    expect(formatDuration(null, null, now)).toBe('—');
    expect(formatDuration('not a date', null, now)).toBe('—');
  });

  it('never goes negative (clock skew between the worker and the api-server)', () => {
    expect(formatDuration('2024-01-01T10:00:01Z', '2024-01-01T10:00:00Z')).toBe('0 ms');
  });
});

describe('formatStart and formatParameters', () => {
  it('shows the start in the browser time zone, to the second', () => {
    expect(formatStart('2024-01-31T09:05:00Z')).toBe('2024-01-31 09:05:00'); // jest runs with TZ=UTC
    expect(formatStart(null)).toBe('not started');
  });

  it('shows parameters on one line, strings quoted', () => {
    expect(formatParameters({ region: 'eu', limit: 100, tags: ['a'] })).toBe("region='eu', limit=100, tags=[\"a\"]");
    expect(formatParameters(null)).toBe('no parameters');
    expect(formatParameters({})).toBe('no parameters');
  });
});

describe('stateBadge and isActive', () => {
  it("uses Airflow's colours and a CSS class per state", () => {
    expect(stateBadge('failed')).toEqual({ label: 'failed', className: 'anp-state-failed', colour: '#d10000' });
    expect(stateBadge('success').colour).toBe('#008000');
    expect(stateBadge('up_for_retry').label).toBe('up for retry');
    expect(stateBadge(null)).toEqual({ label: 'none', className: 'anp-state-none', colour: '#a0a0a0' });
    expect(stateBadge('some<odd>state').className).toBe('anp-state-someoddstate');
  });

  it('polls while an attempt may still change, not after it ended', () => {
    for (const s of ['queued', 'scheduled', 'running', 'up_for_retry', 'deferred', null]) {
      expect(isActive(s)).toBe(true);
    }
    for (const s of ['success', 'failed', 'upstream_failed', 'skipped', 'removed']) {
      expect(isActive(s)).toBe(false);
    }
  });
});

describe('ordering attempts', () => {
  const first = attempt({ run_id: 'r1', start_date: '2024-01-01T10:00:00Z', state: 'success' });
  const failed1 = attempt({ run_id: 'r2', try_number: 1, start_date: '2024-01-02T10:00:00Z', state: 'failed' });
  const failed2 = attempt({ run_id: 'r2', try_number: 2, start_date: '2024-01-02T10:05:00Z', state: 'failed' });
  const queued = attempt({ run_id: 'r3', start_date: null, end_date: null, state: 'queued' });

  it('puts the newest first, one not started yet on top', () => {
    expect(sortAttempts([first, failed2, queued, failed1]).map(a => [a.run_id, a.try_number])).toEqual([
      ['r3', 1],
      ['r2', 2],
      ['r2', 1],
      ['r1', 1]
    ]);
  });

  it('orders tries of one start by try number', () => {
    const a = attempt({ try_number: 1 });
    const b = attempt({ try_number: 2 });
    expect(sortAttempts([a, b]).map(x => x.try_number)).toEqual([2, 1]);
  });

  it('finds the previous attempt and the last success to compare with', () => {
    const all = [first, failed1, failed2, queued];
    expect(previousAttempt(all, failed2)).toBe(failed1);
    expect(previousAttempt(all, failed1)).toBe(first);
    expect(previousAttempt(all, first)).toBeNull();
    expect(lastSuccess(all, failed2)).toBe(first);
    expect(lastSuccess(all, first)).toBeNull();
    const other = attempt({ task_id: 'other', run_id: 'r9', start_date: '2024-01-03T00:00:00Z' });
    expect(previousAttempt([...all, other], other)).toBeNull();
  });

  it("turns a viewer link into the viewer's compare page", () => {
    expect(compareUrl(failed2.viewer_url!, 'previous')).toBe(
      'http://af/notebook/dags/report/compare?run_id=manual__1&task_id=nb&map_index=-1&try_number=1&against=previous'
    );
    expect(compareUrl('/notebook/dags/d/view?run_id=a%2Bb', 'last_success')).toBe(
      '/notebook/dags/d/compare?run_id=a%2Bb&against=last_success'
    );
  });
});

describe('the parameters form', () => {
  const declared = [
    { name: 'region', default: "'eu'", value: 'eu', has_value: true, type: 'str', help: 'where' },
    { name: 'limit', default: '100', value: 100, has_value: true, type: 'int', help: '' },
    { name: 'ratio', default: '0.5', value: 0.5, has_value: true, type: null, help: '' },
    { name: 'dry', default: 'False', value: false, has_value: true, type: 'bool', help: '' },
    { name: 'tags', default: "['a']", value: ['a'], has_value: true, type: 'list', help: '' },
    { name: 'day', default: 'date.today()', value: null, has_value: false, type: 'None', help: 'run day' }
  ];

  it('builds one typed field per parameter, in the cell order', () => {
    const fields = buildParamsForm(declared);
    expect(fields.map(f => [f.name, f.kind, f.initial, f.expression])).toEqual([
      ['region', 'string', 'eu', false],
      ['limit', 'integer', '100', false],
      ['ratio', 'number', '0.5', false],
      ['dry', 'boolean', 'false', false],
      ['tags', 'json', '["a"]', false],
      ['day', 'json', '', true]
    ]);
    expect(fields[0].help).toBe('where');
    expect(fields[2].typeLabel).toBe('number');
  });

  it('gives typed values for what was changed, and keeps the notebook default for the rest', () => {
    const fields = buildParamsForm(declared);
    const { values, errors } = readParamsForm(fields, {
      region: 'us',
      limit: '250',
      ratio: '0.5',
      dry: 'true',
      tags: '["x", "y"]',
      day: ''
    });
    expect(errors).toEqual({});
    expect(values).toEqual({ region: 'us', limit: 250, dry: true, tags: ['x', 'y'] });
  });

  it('says what is wrong with a value of the wrong type', () => {
    const fields = buildParamsForm(declared);
    const { values, errors } = readParamsForm(fields, { limit: '2.5', ratio: 'abc', tags: '[x' });
    expect(Object.keys(errors).sort()).toEqual(['limit', 'ratio', 'tags']);
    expect(errors.limit).toContain('integer');
    expect(values).toEqual({});
  });

  it('suggests a valid DAG id from the notebook path', () => {
    expect(dagIdFor('reports/Daily Sales.ipynb')).toBe('daily_sales');
    expect(dagIdFor('???.ipynb')).toBe('notebook');
    expect(validDagId('daily_sales')).toBe(true);
    expect(validDagId('bad id')).toBe(false);
  });
});

describe('the failing cell of a debug copy', () => {
  it('says which cell failed and why', () => {
    expect(describeFailure({ index: 25, ename: 'RuntimeError', evalue: 'boom' })).toBe(
      'Cell 26 failed: RuntimeError: boom'
    );
    expect(describeFailure(3)).toBe('Cell 4 failed.');
    expect(describeFailure({ index: 27, position: 26, ename: 'ValueError', evalue: 'x' })).toBe(
      'Cell 26 failed: ValueError: x'
    );
    expect(describeFailure(null)).toContain('No cell failed');
    expect(failedIndex({ index: 7 })).toBe(7);
    expect(failedIndex(2)).toBe(2);
    expect(failedIndex(null)).toBeNull();
  });
});

describe('an output notebook shown in JupyterLab', () => {
  it('is never trusted, whatever its cells say', () => {
    const nb = {
      cells: [
        { cell_type: 'code', metadata: { trusted: true, tags: ['x'] }, outputs: [] },
        { cell_type: 'markdown', metadata: {} },
        { cell_type: 'raw' }
      ]
    };
    untrusted(nb);
    expect(nb.cells.map(c => c.metadata)).toEqual([{ tags: ['x'] }, {}, undefined]);
    expect(untrusted(null)).toBeNull();
    expect(untrusted({ cells: 'odd' })).toEqual({ cells: 'odd' });
  });
});
