"""The viewer plugin as seen by the ``airflow.plugins`` entry point.

Airflow loads the plugins a provider registers (``get_provider_info``) only when ``[core] lazy_discover_providers``
is False; by default it does not. The entry point covers the default; when discovery is eager, the provider
registration loads the plugin and this name is None, so the plugin is not registered twice.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import conf

from airflow_notebook_provider.viewer.plugin import NotebookViewerPlugin

plugin = NotebookViewerPlugin if conf.getboolean("core", "lazy_discover_providers", fallback=True) else None
