"""The HTML report of a run (``autoft report``): plots and tables from the files of its run directory."""

from autoft.reporting.page import render, write_report

__all__ = ["render", "write_report"]
