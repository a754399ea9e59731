"""One module per BENCHMARKS.md section: each renders its benchmark's results
(`benchmarks/results/`) as Markdown lines, and says how to measure what is
missing. `benchmarks/report.py` only assembles them in order."""
