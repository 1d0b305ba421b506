"""A notebook as data, with no Airflow and no kernel: load, parameters and their translators, introspection of the
parameters cell, the papermill run record, redaction, comparison, safe text."""
