"""Showing runs: figures derived in one place from the records, tables, plots and HTML
reports, the interview's answers, and what the notebooks call."""
