-- Dataset "narrow": (id bigint primary key, a bigint, b text, c text).
-- psql variables: :N = rows in base (ids 1..N); :H = N/2. The load is ids H+1 .. H+N (half of
-- them exist in base), in a deterministic shuffled order (rn, by md5 of the id), no repeats.
-- Every value is a pure function of the id: the same N gives the same files on every run.
CREATE TABLE base (id bigint PRIMARY KEY, a bigint, b text, c text);
INSERT INTO base
SELECT i, i * 3, 'base ' || md5('b' || i), 'base row ' || i
FROM generate_series(1::bigint, :N) i;

CREATE TABLE load_src (LIKE base, rn bigint NOT NULL);
INSERT INTO load_src
SELECT k, k * 31 + 7, md5('load b ' || k), format('load %s, "q%s"', k, k % 97),
       row_number() OVER (ORDER BY md5(k::text))
FROM generate_series(:H + 1::bigint, :H + :N) k;
