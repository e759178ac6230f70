"""The figures managers steer by: service, agents, campaigns and data quality.

Each area is an ordered table of figures, each figure one async function of a
session and a `KpiQuery` (period and filters) returning a `Table`. Every
figure is an aggregate the database computes over indexed columns (or, for
presence time, over the small presence log), so the dashboard's cost follows
the period's rows, not the size of the history. `/api/kpis/...` serves them
as JSON and CSV, `/console/kpis` draws them.
"""
