# Scenario B: as A, with a 12-column mixed-type table.
scenario B "Upsert into a pre-filled table, 12 mixed-type columns" scenario_B \
    "Table (bigint pk, int, bigint, numeric(12,2), double precision, text, varchar(64), bool, date, timestamptz, jsonb, uuid) with some NULLs and quoted text, pre-filled with N rows; load as in A (bench/datasets/wide.sql)."
scenario_B() { run_upsert_scenario B wide; }
