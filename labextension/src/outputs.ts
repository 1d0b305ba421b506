/**
 * Output notebooks opened read-only in JupyterLab: a contents drive (`AirflowOutput:`) whose files are attempts'
 * output notebooks, fetched by the server extension through the api-server's viewer (Airflow's access rules apply,
 * and no storage credential reaches the browser). Every file is read-only (`writable: false`), and nothing is saved.
 */
import { Contents, ServerConnection } from '@jupyterlab/services';
import { Signal } from '@lumino/signaling';

import { getOutput } from './api';
import { IAttemptId, untrusted } from './model';

export const DRIVE_NAME = 'AirflowOutput';

function segment(text: string): string {
  return text.replace(/[\/\\:]+/g, '_');
}

/** The drive path an attempt's output opens at: `AirflowOutput:<dag>/<run>/<task>.try<n>.ipynb`. */
export function outputPath(a: IAttemptId): string {
  const mapped = a.map_index >= 0 ? `[${a.map_index}]` : '';
  return `${DRIVE_NAME}:${segment(a.dag_id)}/${segment(a.run_id)}/${segment(a.task_id)}${mapped}.try${a.try_number}.ipynb`;
}

export class OutputDrive implements Contents.IDrive {
  readonly name = DRIVE_NAME;
  readonly serverSettings = ServerConnection.makeSettings();
  readonly fileChanged = new Signal<this, Contents.IChangedArgs>(this);

  /** Register the attempt an output path stands for (before opening it). */
  remember(attempt: IAttemptId): string {
    const path = outputPath(attempt);
    this._attempts.set(path.slice(DRIVE_NAME.length + 1), attempt);
    return path;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    this._disposed = true;
    Signal.clearData(this);
  }

  async get(localPath: string, options?: Contents.IFetchOptions): Promise<Contents.IModel> {
    const name = localPath.split('/').pop() ?? localPath;
    const attempt = this._attempts.get(localPath);
    if (!attempt) {
      if (options?.content === false || !localPath.endsWith('.ipynb')) {
        return this.model(localPath, name, 'directory', null);
      }
      throw new Error(`${localPath}: open it again from the Airflow runs panel (the output was not fetched here).`);
    }
    const content = options?.content === false ? null : untrusted(await getOutput(attempt));
    return this.model(localPath, name, 'notebook', content);
  }

  private model(path: string, name: string, type: 'notebook' | 'directory', content: unknown): Contents.IModel {
    const now = new Date().toISOString();
    return {
      name,
      path,
      type,
      writable: false,
      created: now,
      last_modified: now,
      mimetype: type === 'notebook' ? 'application/x-ipynb+json' : '',
      content: type === 'directory' ? [] : content,
      format: type === 'notebook' ? 'json' : 'json'
    };
  }

  getDownloadUrl(): Promise<string> {
    return Promise.reject(new Error('An Airflow output notebook is downloaded from its viewer page.'));
  }

  private readOnly(): Promise<never> {
    return Promise.reject(
      new Error('An Airflow output notebook is read-only: Debug writes a copy you can edit and run.')
    );
  }

  newUntitled(): Promise<Contents.IModel> {
    return this.readOnly();
  }

  delete(): Promise<void> {
    return this.readOnly();
  }

  rename(): Promise<Contents.IModel> {
    return this.readOnly();
  }

  save(): Promise<Contents.IModel> {
    return this.readOnly();
  }

  copy(): Promise<Contents.IModel> {
    return this.readOnly();
  }

  createCheckpoint(): Promise<Contents.ICheckpointModel> {
    return this.readOnly();
  }

  listCheckpoints(): Promise<Contents.ICheckpointModel[]> {
    return Promise.resolve([]);
  }

  restoreCheckpoint(): Promise<void> {
    return this.readOnly();
  }

  deleteCheckpoint(): Promise<void> {
    return Promise.resolve();
  }

  private _attempts = new Map<string, IAttemptId>();
  private _disposed = false;
}
