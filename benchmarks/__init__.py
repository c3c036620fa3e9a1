"""voicepipe benchmarks: ``python -m benchmarks`` (or ``./dev bench``) prints the table for BENCHMARKS.md."""
