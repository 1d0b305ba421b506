/**
 * airflow-notebook-provider's JupyterLab extension: the Airflow runs panel and its commands
 * (`airflow-notebook:open-runs`, `:debug`, `:run-now`, `:schedule`) in the palette and the notebook toolbar.
 */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, Notification, showErrorMessage } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { CommandToolbarButton, LabIcon } from '@jupyterlab/ui-components';

import { ApiError, debugCopy, getParams, getRuns, getStatus, schedule, trigger } from './api';
import { runNowForm, scheduleForm } from './forms';
import { IAttempt, IAttemptId, attemptId, describeFailure, failedIndex, sortAttempts } from './model';
import { OutputDrive } from './outputs';
import { RunsPanel, asApiError, openTab } from './panel';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24"><g class="jp-icon3" ' +
  'fill="#616161"><path d="M12 2.5c2.9 0 4.6 2.1 4.1 4.6-.3 1.6-1.7 3-3.4 3.6l-.7-1.6c1-.4 1.8-1.2 2-2.2.3-1.5-.7-2.7-2-2.7V2.5z"/>' +
  '<path d="M21.5 12c0 2.9-2.1 4.6-4.6 4.1-1.6-.3-3-1.7-3.6-3.4l1.6-.7c.4 1 1.2 1.8 2.2 2 1.5.3 2.7-.7 2.7-2h1.7z"/>' +
  '<path d="M12 21.5c-2.9 0-4.6-2.1-4.1-4.6.3-1.6 1.7-3 3.4-3.6l.7 1.6c-1 .4-1.8 1.2-2 2.2-.3 1.5.7 2.7 2 2.7v1.7z"/>' +
  '<path d="M2.5 12c0-2.9 2.1-4.6 4.6-4.1 1.6.3 3 1.7 3.6 3.4l-1.6.7c-.4-1-1.2-1.8-2.2-2-1.5-.3-2.7.7-2.7 2H2.5z"/>' +
  '<circle cx="12" cy="12" r="1.6"/></g></svg>';

export const airflowIcon = new LabIcon({ name: 'airflow-notebook:runs', svgstr: ICON_SVG });

export namespace CommandIDs {
  export const openRuns = 'airflow-notebook:open-runs';
  export const debug = 'airflow-notebook:debug';
  export const runNow = 'airflow-notebook:run-now';
  export const schedule = 'airflow-notebook:schedule';
}

/** A debug copy (`*.debug.ipynb`) is not a notebook tasks run: the panel keeps following the one it came from. */
function isDebugCopy(path: string): boolean {
  return /\.debug\.[^/]*$/.test(path);
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'airflow-notebook-provider:plugin',
  description: 'See, debug, run and schedule the open notebook’s Airflow runs.',
  autoStart: true,
  requires: [INotebookTracker, IDocumentManager],
  optional: [ICommandPalette, ILabShell],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    docManager: IDocumentManager,
    palette: ICommandPalette | null,
    labShell: ILabShell | null
  ) => {
    const { commands, shell } = app;
    const drive = new OutputDrive();
    app.serviceManager.contents.addDrive(drive);

    const openOutput = async (a: IAttempt): Promise<void> => {
      try {
        const path = drive.remember(attemptId(a));
        const widget = docManager.openOrReveal(path, 'Notebook', undefined, undefined, {
          shouldStart: false,
          canStart: false,
          autoStartDefault: false,
          shutdownOnDispose: false
        });
        if (!widget) {
          throw new Error(`JupyterLab cannot open ${path}.`);
        }
        await widget.context.ready;
        widget.title.caption = `Output of ${a.dag_id} › ${a.task_id}, try ${a.try_number} (${a.run_id}), read-only`;
      } catch (error) {
        const e = asApiError(error);
        if (a.viewer_url && e.status === 404) {
          openTab(a.viewer_url); // a server extension without the output route: the viewer's own page
          return;
        }
        panel.notice(`Cannot open the output of ${a.task_id}, try ${a.try_number}: ${e.message}`, 'error', e.fix);
      }
    };

    const debug = async (a: IAttemptId): Promise<void> => {
      panel.notice(`Writing a debug copy of ${a.task_id}, try ${a.try_number}…`);
      try {
        const copy = await debugCopy(a, panel.path);
        const widget = docManager.openOrReveal(copy.path, 'Notebook') as NotebookPanel | undefined;
        if (!widget) {
          throw new Error(`JupyterLab cannot open ${copy.path}.`);
        }
        await widget.context.ready;
        await widget.revealed;
        const message = `Debug copy ${copy.path}: ${describeFailure(copy.failed_cell)}`;
        const index = failedIndex(copy.failed_cell);
        const notebook = widget.content;
        if (index !== null && index >= 0 && index < notebook.widgets.length) {
          notebook.activeCellIndex = index;
          await notebook.scrollToItem(index, 'center');
          notebook.activeCell?.node.classList.add('anp-failed-cell');
        }
        panel.notice(message, index === null ? 'info' : 'error');
        Notification.info(message, { autoClose: 8000 });
      } catch (error) {
        const e = asApiError(error);
        panel.notice(`Debug failed: ${e.message}`, 'error', e.fix);
      }
    };

    const panel = new RunsPanel({
      openOutput: a => void openOutput(a),
      debug: a => void commands.execute(CommandIDs.debug, { ...a }),
      runNow: () => void commands.execute(CommandIDs.runNow),
      schedule: () => void commands.execute(CommandIDs.schedule)
    });
    panel.title.icon = airflowIcon;
    shell.add(panel, 'right', { rank: 600 });

    const follow = (): void => {
      const path = notebooks.currentWidget?.context.path ?? null;
      if (path === null || (!isDebugCopy(path) && !path.startsWith(`${drive.name}:`))) {
        panel.path = path;
      }
    };
    notebooks.currentChanged.connect(follow);
    follow();

    const notebookPath = (): string | null => panel.path ?? notebooks.currentWidget?.context.path ?? null;

    commands.addCommand(CommandIDs.openRuns, {
      label: 'Airflow: Show Runs of This Notebook',
      caption: 'The Airflow tasks that run this notebook and their attempts',
      icon: airflowIcon,
      execute: () => {
        follow();
        if (labShell) {
          labShell.activateById(panel.id);
        } else {
          shell.activateById(panel.id);
        }
        void panel.refresh();
      }
    });

    commands.addCommand(CommandIDs.debug, {
      label: 'Airflow: Debug the Last Failed Attempt',
      caption: 'Write a debug copy of a failed attempt beside the notebook and open it at the failing cell',
      execute: async args => {
        if (args && typeof args.dag_id === 'string') {
          return debug({
            dag_id: String(args.dag_id),
            run_id: String(args.run_id),
            task_id: String(args.task_id),
            map_index: Number(args.map_index ?? -1),
            try_number: Number(args.try_number)
          });
        }
        const path = notebookPath();
        if (!path) {
          return showErrorMessage('Debug', 'Open a notebook first: Debug takes its last failed attempt.');
        }
        try {
          const failed = sortAttempts((await getRuns(path)).attempts).find(a => a.state === 'failed');
          if (!failed) {
            return showErrorMessage('Debug', `No failed attempt of ${path} to debug.`);
          }
          return debug(attemptId(failed));
        } catch (error) {
          return showErrorMessage('Debug', asApiError(error).message);
        }
      }
    });

    commands.addCommand(CommandIDs.runNow, {
      label: 'Airflow: Run Now with Parameters…',
      caption: 'Trigger a run of a DAG that runs this notebook, with parameters from its parameters cell',
      execute: async () => {
        const path = notebookPath();
        if (!path) {
          return showErrorMessage('Run now', 'Open a notebook first.');
        }
        try {
          const [runs, params] = await Promise.all([getRuns(path), getParams(path)]);
          if (runs.tasks.length === 0) {
            return showErrorMessage(
              'Run now',
              `No Airflow DAG runs ${path} yet: Schedule… writes a DAG for it (with no schedule for manual runs only).`
            );
          }
          const form = await runNowForm(path, runs.tasks, params.parameters);
          if (!form) {
            return;
          }
          const run = await trigger(path, form.dagId, form.parameters);
          panel.follow(run.dag_id, run.run_id);
          await commands.execute(CommandIDs.openRuns);
        } catch (error) {
          const e = asApiError(error);
          panel.notice(`Run now failed: ${e.message}`, 'error', e.fix);
          return showErrorMessage('Run now', e.fix ? `${e.message}\n\n${e.fix}` : e.message);
        }
      }
    });

    commands.addCommand(CommandIDs.schedule, {
      label: 'Airflow: Schedule This Notebook…',
      caption: 'Write a DAG file with a NotebookOperator for this notebook (parsed by Airflow before it is saved)',
      execute: async () => {
        const path = notebookPath();
        if (!path) {
          return showErrorMessage('Schedule', 'Open a notebook first.');
        }
        try {
          const [params, status] = await Promise.all([getParams(path), getStatus()]);
          const folder = status.dag_folder ?? '';
          const dagFile = await scheduleForm(path, params.parameters, folder, async value => {
            const reply = await schedule({ path, ...value });
            return reply.dag_file;
          });
          if (dagFile) {
            panel.notice(`Scheduled: wrote ${dagFile}. The dag-processor picks it up on its next scan.`);
            Notification.success(`Wrote ${dagFile}`, { autoClose: 8000 });
            void panel.refresh();
          }
        } catch (error) {
          const e = asApiError(error);
          return showErrorMessage('Schedule', e.fix ? `${e.message}\n\n${e.fix}` : e.message);
        }
      }
    });

    for (const command of [CommandIDs.openRuns, CommandIDs.debug, CommandIDs.runNow, CommandIDs.schedule]) {
      palette?.addItem({ command, category: 'Airflow' });
    }

    // The notebook toolbar: the panel, Run now and Schedule, beside the kernel's buttons.
    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (nb: NotebookPanel) => {
        if (nb.context.path.startsWith(`${drive.name}:`)) {
          return; // a read-only output: nothing to run or schedule from it
        }
        const items: [string, string, string][] = [
          ['airflow-runs', CommandIDs.openRuns, 'Airflow'],
          ['airflow-run-now', CommandIDs.runNow, 'Run now'],
          ['airflow-schedule', CommandIDs.schedule, 'Schedule']
        ];
        items.forEach(([name, id, label], i) => {
          nb.toolbar.insertItem(20 + i, name, new CommandToolbarButton({ commands, id, label }));
        });
      }
    });
  }
};

export { ApiError };
export default plugin;
