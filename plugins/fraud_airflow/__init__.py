"""Airflow operators and hooks for feature groups and endpoints, over :mod:`fraud_detection`.

Module names are unique on purpose: Airflow's plugin manager also imports every file under
``plugins/`` by its bare file name.
"""
