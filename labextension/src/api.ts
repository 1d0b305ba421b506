/**
 * Calls to the server extension (`airflow_notebook_provider.jupyter`) under the Jupyter server's base URL, through
 * `ServerConnection`, so Jupyter's own authentication and XSRF token go with every request. The Airflow credentials
 * stay in the Jupyter server: nothing here sees them.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { IAttemptId, IDebugCopy, IParams, IRuns, IStatus } from './model';

const NAMESPACE = 'airflow-notebook/api';

/** An error reply of the server extension: its message, and the fix when it gives one. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly fix: string | null = null
  ) {
    super(message);
  }
}

async function request<T>(endpoint: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, NAMESPACE, endpoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ApiError(`The Jupyter server cannot be reached: ${error}`, 0);
  }
  const text = await response.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    if (response.status === 404 && !data) {
      throw new ApiError(
        'The airflow-notebook server extension is not enabled in this Jupyter server.',
        404,
        'Install airflow-notebook-provider[jupyter] in the environment that runs JupyterLab, then restart it ' +
          '(`jupyter server extension list` should show airflow_notebook_provider.jupyter enabled).'
      );
    }
    const message = data?.message || data?.error || data?.reason || text || response.statusText;
    throw new ApiError(String(message), response.status, data?.fix ?? null);
  }
  return data as T;
}

function post<T>(endpoint: string, body: unknown): Promise<T> {
  return request<T>(endpoint, { method: 'POST', body: JSON.stringify(body) });
}

export function getStatus(): Promise<IStatus> {
  return request<IStatus>('status');
}

export function getRuns(path: string): Promise<IRuns> {
  return request<IRuns>(`runs?path=${encodeURIComponent(path)}`);
}

export function getParams(path: string): Promise<IParams> {
  return request<IParams>(`params?path=${encodeURIComponent(path)}`);
}

/** Write the attempt's debug copy beside `path` (the open notebook), as `airflow-notebook pull` does. */
export function debugCopy(attempt: IAttemptId, path: string | null): Promise<IDebugCopy> {
  return post<IDebugCopy>('debug', path ? { ...attempt, path } : attempt);
}

export function trigger(
  path: string,
  dagId: string,
  parameters: Record<string, unknown>
): Promise<{ dag_id: string; run_id: string; state?: string }> {
  return post('trigger', { path, dag_id: dagId, parameters });
}

export interface IScheduleRequest {
  path: string;
  dag_id: string;
  schedule: string | null;
  parameters: Record<string, unknown>;
  folder: string;
  output?: string | null;
  conn_id?: string | null;
  overwrite?: boolean;
}

export function schedule(body: IScheduleRequest): Promise<{ dag_file: string }> {
  return post('schedule', body);
}

/** An attempt's output notebook (nbformat JSON), fetched by the server extension through the viewer. */
export async function getOutput(attempt: IAttemptId): Promise<unknown> {
  const query = new URLSearchParams({
    dag_id: attempt.dag_id,
    run_id: attempt.run_id,
    task_id: attempt.task_id,
    map_index: String(attempt.map_index),
    try_number: String(attempt.try_number)
  });
  const reply = await request<{ name: string; content: unknown }>(`output?${query.toString()}`);
  return reply.content;
}
