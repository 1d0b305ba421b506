"""Maintenance run by the CLI or a maintenance DAG: retention of what notebook tasks left under ``output_base``."""
