# Scenario A: upsert N rows (half existing keys) into a pre-filled 4-column table.
scenario A "Upsert into a pre-filled table, 4 columns" scenario_A \
    "Table (id bigint primary key, a bigint, b text, c text) pre-filled with N rows (ids 1..N); the load is N rows with ids N/2+1..N/2+N (half exist, half new) in a shuffled order, as CSV (bench/datasets/narrow.sql)."
scenario_A() { run_upsert_scenario A narrow; }
