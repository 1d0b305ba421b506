/**
 * The Run now and Schedule forms: dialogs whose parameter fields come from the notebook's parameters cell (the
 * server extension's `params` route, which reads it as `airflow-notebook params` does).
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IDeclaredParameter, ITaskRef } from './model';
import { IField, IFormResult, buildParamsForm, dagIdFor, readParamsForm, validDagId } from './params';
import { el } from './panel';

/** A form body: the fields' inputs by name, read back by `getValue`. */
class FormBody<T> extends Widget {
  constructor(
    build: (form: FormBody<T>) => void,
    private readonly read: (form: FormBody<T>) => T
  ) {
    super();
    this.addClass('anp-form');
    build(this);
  }

  getValue(): T {
    return this.read(this);
  }

  input(name: string): HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement {
    return this.node.querySelector(`[data-name="${CSS.escape(name)}"]`) as HTMLInputElement;
  }

  row(label: string, control: HTMLElement, help = '', error = ''): void {
    const row = el('label', 'anp-form-row');
    row.append(el('span', 'anp-form-label', label), control);
    if (help) {
      row.append(el('span', 'anp-form-help', help));
    }
    if (error) {
      row.append(el('span', 'anp-form-error', error));
    }
    this.node.append(row);
  }
}

function textInput(name: string, value: string, placeholder = ''): HTMLInputElement {
  const input = el('input', 'jp-mod-styled anp-input');
  input.type = 'text';
  input.dataset.name = name;
  input.value = value;
  input.placeholder = placeholder;
  return input;
}

function paramInput(field: IField, text: string): HTMLElement {
  if (field.kind === 'boolean') {
    const select = el('select', 'jp-mod-styled anp-input');
    select.dataset.name = `param:${field.name}`;
    for (const v of ['true', 'false']) {
      const option = el('option', '', v);
      option.value = v;
      select.append(option);
    }
    select.value = text === 'true' ? 'true' : 'false';
    return select;
  }
  const input = textInput(`param:${field.name}`, text, field.expression ? 'the notebook’s default' : '');
  input.inputMode = field.kind === 'integer' || field.kind === 'number' ? 'decimal' : 'text';
  return input;
}

function addParamRows<T>(form: FormBody<T>, fields: IField[], texts: Record<string, string>, errors: Record<string, string>): void {
  if (fields.length === 0) {
    form.node.append(el('p', 'anp-form-help', 'The notebook declares no parameters (no cell tagged `parameters`).'));
  }
  for (const f of fields) {
    const help = [f.expression ? `default: ${f.initial || 'an expression in the notebook'}` : '', f.help]
      .filter(Boolean)
      .join(' · ');
    form.row(`${f.name} (${f.typeLabel})`, paramInput(f, texts[f.name] ?? f.initial), help, errors[f.name] ?? '');
  }
}

function readParamTexts<T>(form: FormBody<T>, fields: IField[]): Record<string, string> {
  const texts: Record<string, string> = {};
  for (const f of fields) {
    texts[f.name] = form.input(`param:${f.name}`).value;
  }
  return texts;
}

export interface IRunNowValue {
  dagId: string;
  result: IFormResult;
  texts: Record<string, string>;
}

/** The Run now form: which DAG (of those running this notebook) and the parameters; null when cancelled. */
export async function runNowForm(
  path: string,
  tasks: ITaskRef[],
  declared: IDeclaredParameter[]
): Promise<{ dagId: string; parameters: Record<string, unknown> } | null> {
  const fields = buildParamsForm(declared);
  const dagIds = [...new Set(tasks.map(t => t.dag_id))];
  let texts: Record<string, string> = {};
  let errors: Record<string, string> = {};
  let dagId = dagIds[0];
  for (;;) {
    const body = new FormBody<IRunNowValue>(
      form => {
        form.node.append(el('p', 'anp-form-help', `Trigger a run of ${path} with these parameters as the run’s conf.`));
        const select = el('select', 'jp-mod-styled anp-input');
        select.dataset.name = 'dag_id';
        for (const d of dagIds) {
          const option = el('option', '', d);
          option.value = d;
          select.append(option);
        }
        select.value = dagId;
        form.row('DAG', select);
        addParamRows(form, fields, texts, errors);
      },
      form => {
        const t = readParamTexts(form, fields);
        return { dagId: form.input('dag_id').value, texts: t, result: readParamsForm(fields, t) };
      }
    );
    const reply = await showDialog({
      title: 'Run now',
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run' })],
      focusNodeSelector: 'input'
    });
    if (!reply.button.accept || !reply.value) {
      return null;
    }
    ({ dagId, texts } = reply.value);
    errors = reply.value.result.errors;
    if (Object.keys(errors).length === 0) {
      return { dagId, parameters: reply.value.result.values };
    }
  }
}

export interface IScheduleValue {
  dag_id: string;
  schedule: string | null;
  parameters: Record<string, unknown>;
  output: string | null;
  conn_id: string | null;
  folder: string;
  overwrite: boolean;
}

interface IScheduleTexts {
  dag_id: string;
  schedule: string;
  output: string;
  conn_id: string;
  folder: string;
  overwrite: boolean;
  params: Record<string, string>;
}

/**
 * The Schedule form (the DAG file goes into `folder` inside the server's DAGs folder, `dagFolder`, shown as a hint).
 * `submit` is the schedule route: an error it throws (Airflow's parse error) is shown in the form,
 * which opens again with what was typed. Resolves with the DAG file written, or null when cancelled.
 */
export async function scheduleForm(
  path: string,
  declared: IDeclaredParameter[],
  dagFolder: string,
  submit: (value: IScheduleValue) => Promise<string>
): Promise<string | null> {
  const fields = buildParamsForm(declared);
  let texts: IScheduleTexts = {
    dag_id: dagIdFor(path),
    schedule: '@daily',
    output: '',
    conn_id: '',
    folder: '',
    overwrite: false,
    params: {}
  };
  let errors: Record<string, string> = {};
  let failure = '';
  for (;;) {
    const body = new FormBody<IScheduleTexts>(
      form => {
        form.node.append(el('p', 'anp-form-help', `Write a DAG file with a NotebookOperator running ${path}.`));
        if (failure) {
          form.node.append(el('pre', 'anp-form-error anp-parse-error', failure));
        }
        form.row('DAG id', textInput('dag_id', texts.dag_id), '', errors.dag_id ?? '');
        form.row('Schedule', textInput('schedule', texts.schedule, '@daily, a cron expression, or empty: manual only'));
        addParamRows(form, fields, texts.params, errors);
        form.row('Output location', textInput('output', texts.output, 'default: [notebook] output_base'));
        form.row('Connection', textInput('conn_id', texts.conn_id, 'for s3:// and other remote locations'));
        form.row(
          'Folder',
          textInput('folder', texts.folder, 'the DAGs folder itself'),
          `a folder inside the DAGs folder${dagFolder ? ` (${dagFolder})` : ''}, where the DAG file is written`,
          errors.folder ?? ''
        );
        const overwrite = el('input', 'anp-checkbox');
        overwrite.type = 'checkbox';
        overwrite.dataset.name = 'overwrite';
        overwrite.checked = texts.overwrite;
        form.row('Replace the DAG file if it exists', overwrite);
      },
      form => ({
        dag_id: form.input('dag_id').value.trim(),
        schedule: form.input('schedule').value.trim(),
        output: form.input('output').value.trim(),
        conn_id: form.input('conn_id').value.trim(),
        folder: form.input('folder').value.trim(),
        overwrite: (form.input('overwrite') as HTMLInputElement).checked,
        params: readParamTexts(form, fields)
      })
    );
    const reply = await showDialog({
      title: 'Schedule this notebook',
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Schedule' })],
      focusNodeSelector: 'input'
    });
    if (!reply.button.accept || !reply.value) {
      return null;
    }
    texts = reply.value;
    const result = readParamsForm(fields, texts.params);
    errors = { ...result.errors };
    if (!validDagId(texts.dag_id)) {
      errors.dag_id = 'Letters, digits, _ - and . only (Airflow’s rule for a DAG id).';
    }
    if (texts.folder.startsWith('/') || texts.folder.split('/').includes('..')) {
      errors.folder = 'A folder inside the DAGs folder, relative to it (no leading / and no ..).';
    }
    failure = '';
    if (Object.keys(errors).length > 0) {
      continue;
    }
    try {
      return await submit({
        dag_id: texts.dag_id,
        schedule: texts.schedule || null,
        parameters: result.values,
        output: texts.output || null,
        conn_id: texts.conn_id || null,
        folder: texts.folder,
        overwrite: texts.overwrite
      });
    } catch (error) {
      failure = `Not saved: ${error instanceof Error ? error.message : String(error)}`;
    }
  }
}
