"""A self-contained HTML report of runs (training curves with phases, tables, per-category results, offer
trajectories, transcripts), and the matplotlib figures it and the web app embed."""
