"""The report: the tidy table of points, plots, and the report page."""
