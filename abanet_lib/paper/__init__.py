"""The paper as code: the paper's numbers, the experiment list of every table and figure, the
run orchestration that produces their records, and the tables, figures, claims ledger and cost
report rendered from ``results/runs``."""
