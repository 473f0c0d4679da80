"""`vitssl study STUDY.yaml`: the papers' comparisons from one command (spec: the file's format; plan:
resolved, checked stages; runner: skip, resume, progress; results: tables and plots)."""
